"""The inference service: resolve the key, pick the adapter, call the provider, own the audit record.

Usable alike from the views, `manage.py llm test` and `manage.py shell`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from audit.models import Api
from audit.recorder import Caller, CallRecord
from llms import transport
from llms.adapters import get_adapter
from llms.adapters.base import Adapter, Target
from llms.adapters.errors import bad_response
from llms.inbound.chat import ChatRelay
from llms.models import Llm
from llms.scrub import Scrubber, scrub_error
from llms.streaming import Answer, ProxyStream
from llms.validation import validate_chat_request
from mcpd import wirejson
from mcpd.errors import SECRET_UNAVAILABLE, ApiError, InternalError, UpstreamError
from mcpd.memo import TtlMemo
from secrets_app.backends import SecretUnavailable, resolve

log = logging.getLogger(__name__)


@sensitive_variables("target", "scrub", "upstream")
def chat_completion(caller: Caller, llm: Llm, body: dict[str, Any], *,
                    api: str = Api.CHAT_COMPLETIONS) -> Answer | ProxyStream:
    """Answer one chat.completions body with the Llm for the caller: an Answer (a chat.completion), or a
    ProxyStream of chat.completion.chunk events.

    The service owns the call's audit record: it ends here for errors, and in the close() of the Answer
    or the ProxyStream otherwise (whoever relays them calls it once the client has the bytes).
    """
    record = CallRecord(caller, api=api, streaming=body.get("stream") is True)
    record.set_llm(llm.name, llm.provider, llm.model)
    scrub = Scrubber(None)
    try:
        validate_chat_request(body)
        adapter = get_adapter(llm.provider)
        target = _target(llm)
        scrub = Scrubber(target.api_key)
        upstream = transport.post(adapter.build_request(target, body), stream=body.get("stream") is True,
                                  provider=llm.provider)
        if body.get("stream") is True:
            return _open_stream(adapter, upstream, body, record, scrub)
        return _answer(adapter, upstream, record, scrub)
    except ApiError as exc:
        scrub_error(exc, scrub)
        record.fail(exc)
        record.finish()
        raise
    except Exception as exc:  # a bug: the call is audited all the same, naming only the exception's type
        record.fail(InternalError(f"Internal server error ({type(exc).__name__})."))
        record.finish()
        raise


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


def _answer(adapter: Adapter, upstream: transport.UpstreamResponse, record: CallRecord,
            scrub: Scrubber) -> Answer:
    try:
        if upstream.status >= 300:
            raise adapter.to_error(upstream.status, upstream.error_payload(), upstream.retry_after)
        raw = upstream.body(redact=scrub.chunk)
        payload = upstream.parse(raw)
        completion, usage = adapter.parse_response(payload)
    finally:
        upstream.close()
    record.set_usage(usage)
    record.ok()
    # A passthrough hands back the provider's own object: its bytes are relayed as they came.
    return Answer(raw if completion is payload else wirejson.dumps(completion), record)


def _open_stream(adapter: Adapter, upstream: transport.UpstreamResponse, body: dict[str, Any],
                 record: CallRecord, scrub: Scrubber) -> ProxyStream:
    """Check the provider's answer before any header goes out, so early failures stay JSON errors."""
    if upstream.status >= 300 or not upstream.is_event_stream:
        try:
            payload = upstream.error_payload()
        finally:
            upstream.close()
        if upstream.status >= 300:
            raise adapter.to_error(upstream.status, payload, upstream.retry_after)
        raise bad_response(upstream.provider, "no event stream in answer to a streaming request")
    return ProxyStream(upstream, ChatRelay(adapter.stream_translator(body)), record, scrub,
                       keepalive=settings.STREAM_KEEPALIVE_SECONDS)
