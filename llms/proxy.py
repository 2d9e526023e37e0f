"""The inference service: resolve the key, pick the adapter, call the provider, own the audit record.

Usable alike from the views, `manage.py llm test` and `manage.py shell`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from audit.models import Api
from audit.recorder import Caller, CallRecord
from limits.admission import admit
from llms import transport
from llms.adapters import get_adapter
from llms.adapters.base import StreamTranslator, Target, UpstreamRequest, Usage
from llms.adapters.errors import bad_response
from llms.inbound.chat import ChatRelay
from llms.inbound.messages import passthrough as messages_passthrough
from llms.inbound.messages.from_chat import MessagesFromChat, message_from_chat
from llms.inbound.messages.to_chat import to_chat
from llms.inbound.messages.validation import check_request as check_messages_request
from llms.inbound.responses import passthrough as responses_passthrough
from llms.inbound.responses.from_chat import ResponsesFromChat, response_from_chat
from llms.inbound.responses.to_chat import to_chat as responses_to_chat
from llms.inbound.responses.validation import check_request as check_responses_request
from llms.models import Llm, Provider
from llms.scrub import Scrubber, scrub_error
from llms.streaming import Answer, ProxyStream, Relay
from llms.validation import validate_chat_request
from mcpd import wirejson
from mcpd.errors import SECRET_UNAVAILABLE, ApiError, InternalError, UnsupportedProvider, UpstreamError
from mcpd.memo import TtlMemo
from secrets_app.backends import SecretUnavailable, resolve

log = logging.getLogger(__name__)
ToError = Callable[[int, Any, 'str | None'], ApiError]  # an adapter's to_error


class _Call:
    """What a call knows as it goes that its failure needs: the scrubber of its key, once resolved."""

    def __init__(self, caller: Caller, record: CallRecord, body: dict[str, Any]) -> None:
        self.caller, self.record, self.body = caller, record, body
        self.scrub = Scrubber(None)

    @sensitive_variables("target")
    def target(self, llm: Llm) -> Target:
        """The Llm's target, once the caller's limits admit the call (every path asks for it right before
        its upstream request, its body checked), its key resolved and from now on scrubbed from every error."""
        admission = admit(self.caller.user, self.caller.token_sha, llm, self.body)
        if admission is not None:
            self.record.on_finish.append(admission.settle)
            self.record.headers.update(admission.headers)
        target = _target(llm)
        self.scrub = Scrubber(target.api_key)
        return target


def _record(caller: Caller, llm: Llm, api: str, body: dict[str, Any]) -> CallRecord:
    record = CallRecord(caller, api=api, streaming=body.get("stream") is True)
    record.set_llm(llm.name, llm.provider, llm.model, llm.prices)
    return record


@contextmanager
def _recorded(caller: Caller, record: CallRecord, body: dict[str, Any]) -> Iterator[_Call]:
    """Every failure of a call ends its record: an ApiError as it is (scrubbed of the key), a bug by the
    type of its exception alone (its text could hold anything)."""
    call = _Call(caller, record, body)
    try:
        yield call
    except ApiError as exc:
        scrub_error(exc, call.scrub)
        record.fail(exc)
        record.finish()
        raise
    except Exception as exc:
        record.fail(InternalError(f"Internal server error ({type(exc).__name__})."))
        record.finish()
        raise


@sensitive_variables("target", "upstream")
def chat_completion(caller: Caller, llm: Llm, body: dict[str, Any], *,
                    api: str = Api.CHAT_COMPLETIONS) -> Answer | ProxyStream:
    """Answer one chat.completions body with the Llm for the caller: an Answer (a chat.completion), or a
    ProxyStream of chat.completion.chunk events.

    The service owns the call's audit record: it ends here for errors, and in the close() of the Answer
    or the ProxyStream otherwise (whoever relays them calls it once the client has the bytes).
    """
    record = _record(caller, llm, api, body)
    with _recorded(caller, record, body) as call:
        validate_chat_request(body)
        adapter = get_adapter(llm.provider)
        target = call.target(llm)
        stream = body.get("stream") is True
        upstream = transport.post(adapter.build_request(target, body), stream=stream, provider=llm.provider)
        if stream:
            return _open_stream(upstream, record, call.scrub, adapter.to_error,
                                ChatRelay(adapter.stream_translator(body)))
        return _answer(upstream, record, call.scrub, adapter.to_error, adapter.parse_response)


@sensitive_variables("target", "upstream")
def messages(caller: Caller, llm: Llm, body: dict[str, Any], *, version: str | None = None,
             betas: str | None = None) -> Answer | ProxyStream:
    """Answer one Anthropic Messages body with the Llm: an Answer (a Message) or a ProxyStream of
    Anthropic events. A passthrough to an anthropic Llm (`version`, `betas`: the client's
    anthropic-version and anthropic-beta headers, forwarded); translated through chat otherwise."""
    record = _record(caller, llm, Api.MESSAGES, body)
    with _recorded(caller, record, body) as call:
        check_messages_request(body)
        if llm.provider == Provider.ANTHROPIC:
            request = messages_passthrough.upstream_request(call.target(llm), body, endpoint="messages",
                                                            version=version, betas=betas)
            return _passthrough(call, record, llm, request, messages_passthrough.PassthroughRelay(),
                                messages_passthrough.usage_of)
        return _through_chat(call, record, llm, to_chat(body, provider=llm.provider),
                             lambda translator: MessagesFromChat(translator, model=llm.name),
                             lambda completion: message_from_chat(completion, model=llm.name, provider=llm.provider))


@sensitive_variables("target", "upstream")
def responses(caller: Caller, llm: Llm, body: dict[str, Any]) -> Answer | ProxyStream:
    """Answer one Responses body with the Llm: an Answer (a Response) or a ProxyStream of Responses
    events. A passthrough to an openai Llm; translated through chat otherwise (to an anthropic Llm, on
    to the Messages API by its adapter). Stateless on every path."""
    record = _record(caller, llm, Api.RESPONSES, body)
    with _recorded(caller, record, body) as call:
        check_responses_request(body)
        if llm.provider == Provider.OPENAI:
            request = responses_passthrough.upstream_request(call.target(llm), body)
            return _passthrough(call, record, llm, request, responses_passthrough.PassthroughRelay(llm.name, body),
                                responses_passthrough.usage_of)
        chat_body, notes = responses_to_chat(body, provider=llm.provider, default_max_tokens=llm.default_max_tokens)
        for note in notes:
            record.note(note)
        return _through_chat(call, record, llm, chat_body,
                             lambda translator: ResponsesFromChat(translator, model=llm.name, request=body),
                             lambda completion: response_from_chat(completion, model=llm.name, request=body,
                                                                   provider=llm.provider))


@sensitive_variables("upstream")
def _passthrough(call: _Call, record: CallRecord, llm: Llm, request: UpstreamRequest, relay: Relay,
                 usage_of: Callable[[Any], Usage]) -> Answer | ProxyStream:
    """The client's API is the provider's own: its reply and its stream are relayed as they came, read
    only for usage (and a stream's end)."""
    errors = get_adapter(llm.provider).to_error
    stream = request.json.get("stream") is True
    upstream = transport.post(request, stream=stream, provider=llm.provider)
    if stream:
        return _open_stream(upstream, record, call.scrub, errors, relay)
    return _answer(upstream, record, call.scrub, errors, lambda payload: (payload, usage_of(payload)))


@sensitive_variables("upstream")
def _through_chat(call: _Call, record: CallRecord, llm: Llm, chat_body: dict[str, Any],
                  relay: Callable[[StreamTranslator], Relay], reply: Callable[[dict[str, Any]], dict[str, Any]]
                  ) -> Answer | ProxyStream:
    """A chat body translated from the client's API, sent by the Llm's adapter; `relay` (of the adapter's
    stream translator) and `reply` (of its chat.completion) turn the answer back into the client's API."""
    adapter = get_adapter(llm.provider)
    stream = chat_body.get("stream") is True
    upstream = transport.post(adapter.build_request(call.target(llm), chat_body), stream=stream,
                              provider=llm.provider)
    if stream:
        return _open_stream(upstream, record, call.scrub, adapter.to_error,
                            relay(adapter.stream_translator(chat_body)))

    def read(payload: Any) -> tuple[dict[str, Any], Usage]:
        completion, usage = adapter.parse_response(payload)
        return reply(completion), usage

    return _answer(upstream, record, call.scrub, adapter.to_error, read)


@sensitive_variables("target", "upstream")
def count_tokens(caller: Caller, llm: Llm, body: dict[str, Any], *, version: str | None = None,
                 betas: str | None = None) -> Answer:
    """Count a Messages body's input tokens: anthropic Llms ask the provider; the others cannot (501,
    and clients then estimate themselves). Audited, with no tokens billed."""
    record = _record(caller, llm, Api.COUNT_TOKENS, {})
    with _recorded(caller, record, body) as call:
        check_messages_request(body, counting=True)
        if llm.provider != Provider.ANTHROPIC:
            raise UnsupportedProvider(f"count_tokens is answered only by anthropic Llms; '{llm.name}' is "
                                      f"{llm.provider}.")
        request = messages_passthrough.upstream_request(call.target(llm), body, endpoint="messages/count_tokens",
                                                        version=version, betas=betas)
        upstream = transport.post(request, stream=False, provider=llm.provider)
        return _answer(upstream, record, call.scrub, get_adapter(Provider.ANTHROPIC).to_error,
                       lambda payload: (payload, Usage()))


# Resolved keys (a vault read, a file read or a decryption each) for MCPD_AUTH_CACHE_SECONDS.
_targets = TtlMemo()


def _target(llm: Llm) -> Target:
    return _targets.get(llm.pk, lambda: _resolve_target(llm))


@sensitive_variables("api_key")
def _resolve_target(llm: Llm) -> Target:
    api_key = None
    if llm.api_key_secret is not None:
        try:
            api_key = resolve(llm.api_key_secret)
        except SecretUnavailable as exc:
            log.warning("inference on %s: %s", llm.name, exc)
            # Which variable, file or vault path failed is the operator's business, not the caller's.
            raise UpstreamError(f"The API key of Llm '{llm.name}' is unavailable on the server.",
                                code=SECRET_UNAVAILABLE, detail=str(exc)) from None
    return Target(base_url=llm.effective_base_url, model=llm.model, api_key=api_key,
                  default_max_tokens=llm.default_max_tokens)


def _answer(upstream: transport.UpstreamResponse, record: CallRecord, scrub: Scrubber, to_error: ToError,
            read: Callable[[Any], tuple[Any, Usage]]) -> Answer:
    """The provider's whole reply: `read` gives what the client gets and the usage. When that is the
    provider's own object (a passthrough), its bytes are relayed as they came."""
    try:
        if upstream.status >= 300:
            raise to_error(upstream.status, upstream.error_payload(), upstream.retry_after)
        raw = upstream.body(redact=scrub.chunk)
        payload = upstream.parse(raw)
        reply, usage = read(payload)
    finally:
        upstream.close()
    record.set_usage(usage)
    record.ok()
    return Answer(raw if reply is payload else wirejson.dumps(reply), record)


def _open_stream(upstream: transport.UpstreamResponse, record: CallRecord, scrub: Scrubber, to_error: ToError,
                 relay: Relay) -> ProxyStream:
    """Check the provider's answer before any header goes out, so early failures stay JSON errors."""
    if upstream.status >= 300 or not upstream.is_event_stream:
        try:
            payload = upstream.error_payload()
        finally:
            upstream.close()
        if upstream.status >= 300:
            raise to_error(upstream.status, payload, upstream.retry_after)
        raise bad_response(upstream.provider, "no event stream in answer to a streaming request")
    return ProxyStream(upstream, relay, record, scrub, keepalive=settings.STREAM_KEEPALIVE_SECONDS)
