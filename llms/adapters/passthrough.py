"""OpenAI-compatible providers (openai, vllm, deepseek, ollama): the body goes upstream unchanged but for `model`.

https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

import re
from typing import Any

from llms.adapters.base import ChatRequest, OutChunk, SseEvent, Target, UpstreamRequest, Usage
from llms.adapters.errors import bad_response, error_for_status, event_json
from mcpd import wirejson
from mcpd.errors import ApiError, InvalidRequest

DONE = "[DONE]"
# The type of an OpenAI-style error event -> the HTTP status it stands for (its mapping: adapters/errors.py).
ERROR_EVENT_STATUS = {"invalid_request_error": 400, "rate_limit_error": 429, "rate_limit_exceeded": 429,
                      "insufficient_quota": 429, "server_error": 500, "overloaded_error": 529}
# Only chunks that carry a usage object are parsed; the rest are relayed as the provider wrote them.
_HAS_USAGE = re.compile(r'"usage"\s*:\s*\{')


def usage_of(payload: dict[str, Any]) -> Usage:
    """Token counts from an OpenAI `usage` object (absent or partial: None); cached prompt tokens are in
    `prompt_tokens_details.cached_tokens` (and counted in prompt_tokens)."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(prompt_tokens=count(usage.get("prompt_tokens")), completion_tokens=count(usage.get("completion_tokens")),
                 cache_read_tokens=count(cached))


def count(value: Any) -> int | None:
    """A token count, or None for anything that is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def provider_message(payload: Any) -> str:
    """The human message of an OpenAI-style error body (`{"error": {"message": …}}`), else the text."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if payload.get("message"):
            return str(payload["message"])
    if isinstance(payload, str) and payload.strip():
        return payload.strip()[:500]
    return ""


class PassthroughAdapter:
    """Forwards chat.completions to an OpenAI-compatible server and relays its answer as it is."""

    def __init__(self, provider: str, stream_usage: bool = True):
        self.provider = provider
        self.stream_usage = stream_usage  # the server honours stream_options.include_usage

    def build_request(self, target: Target, body: ChatRequest) -> UpstreamRequest:
        payload = {**body, "model": target.model}
        if body.get("stream") is True and self.stream_usage:
            options = body.get("stream_options")
            if options is not None and not isinstance(options, dict):
                raise InvalidRequest("stream_options must be an object.")
            # Ask for usage so the audit row has token counts; the client's own choice is kept below.
            payload["stream_options"] = {**(options or {}), "include_usage": True}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if target.api_key is not None:
            headers["Authorization"] = f"Bearer {target.api_key}"
        return UpstreamRequest(url=f"{target.base_url}/chat/completions", headers=headers, json=payload)

    def parse_response(self, payload: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise bad_response(self.provider, "a reply that is not a chat.completion")
        return payload, usage_of(payload)

    def to_error(self, status: int, payload: Any, retry_after: str | None) -> ApiError:
        return error_for_status(self.provider, status, provider_message(payload), retry_after)

    def stream_translator(self, body: ChatRequest) -> PassthroughStream:
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        return PassthroughStream(self, client_wants_usage=wants_usage)


class PassthroughStream:
    """Relays OpenAI chunks unchanged (as the raw JSON text), noting usage and dropping the usage
    chunk the client did not ask for."""

    def __init__(self, adapter: PassthroughAdapter, client_wants_usage: bool):
        self._adapter = adapter
        self._client_wants_usage = client_wants_usage
        self.usage = Usage()
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SseEvent) -> list[OutChunk]:
        data = event.data
        if data == DONE:
            self._done = True
            return []
        if event.event == "error" or ('"error"' in data and _is_error_event(data)):
            raise self._error_event(data)
        if not _HAS_USAGE.search(data):
            return [data]
        chunk = event_json(data, self._adapter.provider)
        self.usage = usage_of(chunk)
        if not chunk.get("choices") and not self._client_wants_usage:
            return []
        return [data]

    def finish(self) -> list[OutChunk]:
        return []

    def _error_event(self, data: str) -> ApiError:
        """A provider's error event, mapped by its type as the HTTP status it stands for."""
        provider = self._adapter.provider
        payload = event_json(data, provider)
        error = payload.get("error")
        kind = error.get("type") if isinstance(error, dict) else payload.get("type")
        status = ERROR_EVENT_STATUS.get(kind, 500) if isinstance(kind, str) else 500
        message = provider_message(payload)
        return error_for_status(provider, status, message, None, detail=f"{provider} failed mid-stream: {message}")


def _is_error_event(data: str) -> bool:
    """An OpenAI-style `{"error": …}` event (any spacing, any key order), or vLLM's
    `{"object": "error", …}`: parsed only when the text holds `"error"` at all."""
    try:
        value = wirejson.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and (value.get("error") is not None or value.get("object") == "error")
