"""The inference service: resolve the key, pick the adapter, call the provider, own the audit record.

Usable alike from the views, `manage.py llm test` and `manage.py shell`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from audit.models import Api
from audit.recorder import Caller, CallRecord
from limits.admission import Admission, admit
from llms import routing, transport
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
from mcpd.errors import (
    SECRET_UNAVAILABLE,
    UPSTREAM_UNREACHABLE,
    ApiError,
    InternalError,
    UnsupportedProvider,
    UpstreamError,
)
from mcpd.memo import TtlMemo
from mcpd.metrics import COOLDOWNS, FALLBACKS, RETRIES, STREAMS_OPEN
from secrets_app.backends import SecretUnavailable, resolve

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKOFF = 0.1  # seconds before the second attempt (jittered ±50%), doubling for each further one
ToError = Callable[[int, Any, 'str | None'], ApiError]  # an adapter's to_error


class _Exhausted(Exception):
    """Every deployment of an Llm failed the call before its first byte, and a fallback remains."""


class _Call:
    """A call as it goes: its record, the scrubber of the key of the deployment it is sending to, and the
    limits it was admitted under (settled when it ends, or given back when it falls back to another Llm)."""

    def __init__(self, caller: Caller, record: CallRecord, body: dict[str, Any]) -> None:
        self.caller, self.record, self.body = caller, record, body
        self.scrub = Scrubber(None)
        self.admission: Admission | None = None
        self.attempts: list[dict[str, Any]] = []

    def admit(self, llm: Llm) -> None:
        """The caller's limits on the Llm (every path asks right before its first upstream request, its body
        checked): a refusal raises; an admission is settled when the call ends."""
        self.admission = admit(self.caller.user, self.caller.token_sha, llm, self.body)
        if self.admission is not None:
            self.record.on_finish.append(self.admission.settle)
            self.record.headers.update(self.admission.headers)

    def give_back(self, status: int) -> None:
        """The Llm failed the call and another takes it: its reservations are given back now."""
        if self.admission is not None:
            self.record.on_finish.remove(self.admission.settle)
            self.admission.settle({"status": status})
            self.admission = None

    @sensitive_variables("target", "request")
    def send(self, llm: Llm, build: Callable[[Target], UpstreamRequest], *, stream: bool,
             final: bool = True) -> transport.UpstreamResponse:
        """Admit the call, then send the request `build` makes for a deployment, to one deployment after
        another (never the same twice) while they fail before their first byte: refused or reset
        connections, and 429/500/502/503/529, within Llm.max_attempts and MCPD_RETRY_BUDGET_SECONDS,
        after a jittered pause. What else comes back is the answer (an error status too, for the caller
        to turn into an error). When `final` is false (a fallback remains), a failure after the last
        attempt raises _Exhausted instead."""
        self.admit(llm)
        routes = routing.routes_of(llm)
        plan = routing.order(routes, routing.cooling(routes))[:llm.max_attempts]
        deadline = time.monotonic() + settings.RETRY_BUDGET_SECONDS
        for n, route in enumerate(plan):
            last = n == len(plan) - 1
            target = _target(llm, route)
            self.scrub = Scrubber(target.api_key)
            began = time.monotonic()
            try:
                upstream = transport.post(build(target), stream=stream, provider=llm.provider)
            except UpstreamError as exc:
                if exc.code != UPSTREAM_UNREACHABLE:
                    self._ended(llm, route, None, began, len(routes))
                    raise
                self._failed(llm, route, None, began, len(routes))
                if not last and _pause(n, deadline):
                    continue
                if final:
                    raise
                raise _Exhausted from None
            except ApiError:  # a timeout: not retried (the provider may be working on it)
                self._ended(llm, route, None, began, len(routes))
                raise
            if upstream.status not in routing.RETRYABLE_STATUSES:
                self._ended(llm, route, upstream.status, began, len(routes))
                return upstream
            wait = _seconds(upstream.retry_after)
            self._failed(llm, route, upstream.status, began, len(routes), wait)
            # A Retry-After longer than the budget left is not waited out: the 429 goes back with it.
            if not last and (wait is None or wait <= deadline - time.monotonic()) and _pause(n, deadline):
                upstream.close()
                continue
            if final:
                return upstream
            upstream.close()
            raise _Exhausted
        raise AssertionError("an Llm has at least one deployment")  # plan is never empty

    def _failed(self, llm: Llm, route: routing.Route, status: int | None, began: float, routes: int,
                retry_after: float | None = None) -> None:
        """An attempt that failed in a way worth another: counted, its deployment cooled down."""
        self._ended(llm, route, status, began, routes)
        RETRIES.labels(llm.name, route.id, str(status or "connect")).inc()
        if routes > 1:  # an Llm's only deployment is never skipped: nothing to cool it down for
            routing.cool_down(route, retry_after)
            COOLDOWNS.labels(llm.name, route.id).inc()

    def _ended(self, llm: Llm, route: routing.Route, status: int | None, began: float, routes: int) -> None:
        """An attempt, told to the audit row: the deployment it went to, when the Llm has several, and
        every attempt, when there were several (one attempt: the row's own status and duration say it)."""
        self.attempts.append({"llm": llm.name, "deployment": route.id, "status": status,
                              "ms": int((time.monotonic() - began) * 1000)})
        if route.model != llm.model:
            self.record.fields["model"] = route.model
        if routes > 1 or len(self.attempts) > 1:
            self.record.fields.setdefault("detail", {})["deployment"] = route.id
        if len(self.attempts) > 1:
            self.record.fields.setdefault("detail", {})["attempts"] = self.attempts

    def through_fallbacks(self, llm: Llm, serve: Callable[[Llm, bool], T]) -> T:
        """serve(llm, final), then, should every deployment fail it before its first byte, serve each
        fallback Llm in turn (the caller needs run on `llm` alone; each one's limits and prices apply)."""
        chain = (llm, *fallbacks_of(llm))
        for n, each in enumerate(chain):
            if n:
                FALLBACKS.labels(llm.name, each.name).inc()
                self.record.set_llm(each.name, each.provider, each.model, each.prices)
                self.record.fields.setdefault("detail", {})["fallback_from"] = llm.name
            try:
                return serve(each, n == len(chain) - 1)
            except _Exhausted:
                self.give_back(self.attempts[-1]["status"] or 502)
        raise AssertionError("the last Llm of the chain is final")


def _pause(attempt: int, deadline: float) -> bool:
    """Wait a jittered backoff before the next attempt; False when the budget would not allow it."""
    wait = random.uniform(0.5, 1.5) * BACKOFF * 2 ** attempt
    if time.monotonic() + wait >= deadline:
        return False
    time.sleep(wait)
    return True


def _seconds(retry_after: str | None) -> float | None:
    """A (safe_retry_after-checked) Retry-After in seconds from now."""
    if retry_after is None:
        return None
    if retry_after.isdigit():
        return float(retry_after)
    return max(0.0, (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds())


_fallbacks = TtlMemo()


def fallbacks_of(llm: Llm) -> tuple[Llm, ...]:
    """The Llm's enabled fallback Llms, in order (remembered like the Llm: mcpd/memo.py)."""
    if not getattr(llm, "has_fallbacks", True):  # known from the query that found it (llm_to_run)
        return ()
    return _fallbacks.get(llm.pk, lambda: tuple(
        fallback.to for fallback in llm.fallbacks.filter(to__enabled=True).select_related("to", "to__api_key_secret")))


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
        return call.through_fallbacks(llm, lambda each, final: _through_chat(call, each, final, body, ChatRelay))


@sensitive_variables("target", "upstream")
def messages(caller: Caller, llm: Llm, body: dict[str, Any], *, version: str | None = None,
             betas: str | None = None) -> Answer | ProxyStream:
    """Answer one Anthropic Messages body with the Llm: an Answer (a Message) or a ProxyStream of
    Anthropic events. A passthrough to an anthropic Llm (`version`, `betas`: the client's
    anthropic-version and anthropic-beta headers, forwarded); translated through chat otherwise."""
    record = _record(caller, llm, Api.MESSAGES, body)
    with _recorded(caller, record, body) as call:
        check_messages_request(body)

        def serve(llm: Llm, final: bool) -> Answer | ProxyStream:
            if llm.provider == Provider.ANTHROPIC:
                return _passthrough(call, llm, final, lambda target: messages_passthrough.upstream_request(
                    target, body, endpoint="messages", version=version, betas=betas),
                    body, messages_passthrough.PassthroughRelay(), messages_passthrough.usage_of)
            return _through_chat(call, llm, final, to_chat(body, provider=llm.provider),
                                 lambda translator: MessagesFromChat(translator, model=llm.name),
                                 lambda completion: message_from_chat(completion, model=llm.name,
                                                                      provider=llm.provider))

        return call.through_fallbacks(llm, serve)


@sensitive_variables("target", "upstream")
def responses(caller: Caller, llm: Llm, body: dict[str, Any]) -> Answer | ProxyStream:
    """Answer one Responses body with the Llm: an Answer (a Response) or a ProxyStream of Responses
    events. A passthrough to an openai Llm; translated through chat otherwise (to an anthropic Llm, on
    to the Messages API by its adapter). Stateless on every path."""
    record = _record(caller, llm, Api.RESPONSES, body)
    with _recorded(caller, record, body) as call:
        check_responses_request(body)

        def serve(llm: Llm, final: bool) -> Answer | ProxyStream:
            if llm.provider == Provider.OPENAI:
                return _passthrough(call, llm, final, lambda target: responses_passthrough.upstream_request(
                    target, body), body, responses_passthrough.PassthroughRelay(llm.name, body),
                    responses_passthrough.usage_of)
            chat_body, notes = responses_to_chat(body, provider=llm.provider,
                                                 default_max_tokens=llm.default_max_tokens)
            for note in notes:
                record.note(note)
            return _through_chat(call, llm, final, chat_body,
                                 lambda translator: ResponsesFromChat(translator, model=llm.name, request=body),
                                 lambda completion: response_from_chat(completion, model=llm.name, request=body,
                                                                       provider=llm.provider))

        return call.through_fallbacks(llm, serve)


@sensitive_variables("upstream")
def _passthrough(call: _Call, llm: Llm, final: bool, build: Callable[[Target], UpstreamRequest],
                 body: dict[str, Any], relay: Relay, usage_of: Callable[[Any], Usage]) -> Answer | ProxyStream:
    """The client's API is the provider's own: its reply and its stream are relayed as they came, read
    only for usage (and a stream's end)."""
    errors = get_adapter(llm.provider).to_error
    stream = body.get("stream") is True
    upstream = call.send(llm, build, stream=stream, final=final)
    if stream:
        return _open_stream(upstream, call.record, call.scrub, errors, relay)
    return _answer(upstream, call.record, call.scrub, errors, lambda payload: (payload, usage_of(payload)))


@sensitive_variables("upstream")
def _through_chat(call: _Call, llm: Llm, final: bool, chat_body: dict[str, Any],
                  relay: Callable[[StreamTranslator], Relay],
                  reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Answer | ProxyStream:
    """A chat body (the client's, or translated from the client's API), sent by the Llm's adapter; `relay`
    (of the adapter's stream translator) and `reply` (of its chat.completion; None: the chat.completion
    itself) turn the answer back into the client's API."""
    adapter = get_adapter(llm.provider)
    stream = chat_body.get("stream") is True
    upstream = call.send(llm, lambda target: adapter.build_request(target, chat_body), stream=stream, final=final)
    if stream:
        return _open_stream(upstream, call.record, call.scrub, adapter.to_error,
                            relay(adapter.stream_translator(chat_body)))
    if reply is None:
        return _answer(upstream, call.record, call.scrub, adapter.to_error, adapter.parse_response)

    def read(payload: Any) -> tuple[dict[str, Any], Usage]:
        completion, usage = adapter.parse_response(payload)
        return reply(completion), usage

    return _answer(upstream, call.record, call.scrub, adapter.to_error, read)


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
        upstream = call.send(llm, lambda target: messages_passthrough.upstream_request(
            target, body, endpoint="messages/count_tokens", version=version, betas=betas), stream=False)
        return _answer(upstream, record, call.scrub, get_adapter(Provider.ANTHROPIC).to_error,
                       lambda payload: (payload, Usage()))


# Resolved keys (a vault read, a file read or a decryption each) for MCPD_AUTH_CACHE_SECONDS.
_targets = TtlMemo()


def _target(llm: Llm, route: routing.Route) -> Target:
    return _targets.get((llm.pk, route.id), lambda: _resolve_target(llm, route))


@sensitive_variables("api_key")
def _resolve_target(llm: Llm, route: routing.Route) -> Target:
    api_key = None
    if route.secret is not None:
        try:
            api_key = resolve(route.secret)
        except SecretUnavailable as exc:
            log.warning("inference on %s (deployment %s): %s", llm.name, route.id, exc)
            # Which variable, file or vault path failed is the operator's business, not the caller's.
            raise UpstreamError(f"The API key of Llm '{llm.name}' is unavailable on the server.",
                                code=SECRET_UNAVAILABLE, detail=str(exc)) from None
    return Target(base_url=route.base_url, model=route.model, api_key=api_key,
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
    stream = ProxyStream(upstream, relay, record, scrub, keepalive=settings.STREAM_KEEPALIVE_SECONDS)
    STREAMS_OPEN.inc()
    record.on_finish.append(_stream_closed)  # the record is finished once, as the stream closes
    return stream


def _stream_closed(fields: dict[str, Any]) -> None:
    STREAMS_OPEN.dec()
