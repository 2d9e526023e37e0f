"""Responses to an `openai` Llm: the client's body with the Llm's model, and the provider's bytes back.

Every field (custom tools, `include`, encrypted reasoning items, `prompt_cache_key`, hosted tools)
goes up as the client wrote it. The reply and the event stream come back unchanged, read only for
usage, the terminal event and a failure.
https://platform.openai.com/docs/api-reference/responses/create
"""

from __future__ import annotations

import re
import time
from typing import Any

from llms.adapters.base import Target, UpstreamRequest, Usage
from llms.adapters.errors import bad_response, error_for_status, event_json
from llms.adapters.passthrough import ERROR_EVENT_STATUS, count
from llms.inbound.responses.errors import error_event, response_error
from llms.inbound.responses.output import response
from llms.inbound.responses.tables import id_base
from llms.sse import EventSplitter
from llms.streaming import Event
from mcpd import wirejson
from mcpd.errors import ApiError

PROVIDER = "openai"
KEEPALIVE = Event(b"keep-alive", kind="comment")  # Responses has no keep-alive event; a comment is SSE
TERMINAL = {b"response.completed", b"response.incomplete", b"response.failed"}
# Only these events are parsed; the rest (text deltas above all) pass unparsed.
_READ = {b"response.created", b"error"} | TERMINAL
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')


def upstream_request(target: Target, body: dict[str, Any]) -> UpstreamRequest:
    """POST {base_url}/responses with mcpd's key."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if target.api_key is not None:
        headers["Authorization"] = f"Bearer {target.api_key}"
    return UpstreamRequest(url=f"{target.base_url}/responses", headers=headers,
                           json={**body, "model": target.model})


def usage_of(payload: Any) -> Usage:
    """The audit usage of a Response object."""
    if not isinstance(payload, dict) or payload.get("object") != "response":
        raise bad_response(PROVIDER, "a reply that is not a Response")
    return usage_from(payload.get("usage"))


def usage_from(usage: Any) -> Usage:
    """The audit usage of a Responses `usage` object: input_tokens counts the cached ones too."""
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    return Usage(prompt_tokens=count(usage.get("input_tokens")), completion_tokens=count(usage.get("output_tokens")),
                 cache_read_tokens=count(details.get("cached_tokens")),
                 cache_write_tokens=count(details.get("cache_write_tokens")))


def error_of(error: Any, *, where: str) -> ApiError:
    """The ApiError for an `error` event or a failed Response's `error` ({code, message}), by its code as
    the HTTP status it stands for."""
    error = error if isinstance(error, dict) else {}
    code, message = error.get("code"), str(error.get("message") or "")
    status = ERROR_EVENT_STATUS.get(code, 500) if isinstance(code, str) else 500
    return error_for_status(PROVIDER, status, message, None,
                            detail=f"{PROVIDER} failed {where}: {code or 'error'}: {message}")


class PassthroughRelay:
    """Relays the provider's stream byte for byte; reads a copy of its events for usage, the Response's id
    and sequence (for a failure of mcpd's own after them), and its terminal event."""

    reads = "bytes"

    def __init__(self, model: str, request: dict[str, Any]) -> None:
        self._events = EventSplitter()
        self._model, self._request = model, request
        self._begun: dict[str, Any] | None = None  # the Response of the provider's response.created
        self._sequence = 0  # the number after the provider's last
        self._done = False
        self.usage = Usage()
        self.failed: ApiError | None = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, item: bytes) -> list[Event]:
        for name, data in self._events.feed(item):
            if found := _SEQUENCE.findall(data):  # read without parsing: deltas pass unparsed
                self._sequence = max(self._sequence, int(found[-1]) + 1)
            if name in _READ:
                self._read(name, event_json(data.decode("utf-8", "replace"), PROVIDER))
        return [Event(item, kind="raw")]

    def _read(self, name: bytes, event: dict[str, Any]) -> None:
        if name == b"error":
            # The provider's error went out as it came; its response.failed (or ours, when the stream
            # ends without one) follows.
            self.failed = error_of(event, where="mid-stream")
            return
        if name == b"response.created":
            begun = event.get("response")
            self._begun = begun if isinstance(begun, dict) else None
            return
        response = event.get("response")
        response = response if isinstance(response, dict) else {}
        self.usage = usage_from(response.get("usage"))
        self._done = True
        if name == b"response.failed" and self.failed is None:
            self.failed = error_of(response.get("error"), where="mid-stream")

    def finish(self) -> list[Event]:
        return []

    def fail(self, error: ApiError) -> list[Event]:
        """mcpd's `error` event (unless the provider's own went out) and response.failed, numbered after
        the provider's events; the Response is the one the provider began (one of mcpd's when it had not)."""
        begun = self._begun or response(id_base(None), int(time.time()), self._model, self._request)
        failed = {**begun, "status": "failed", "error": response_error(error), "incomplete_details": None,
                  "output": [], "usage": None}
        events = [] if error is self.failed else [error_event(error, self._sequence)]
        events.append({"type": "response.failed", "sequence_number": self._sequence + len(events),
                       "response": failed})
        self._sequence += len(events)
        return [Event(wirejson.dumps(event), name=event["type"]) for event in events]

    def keepalive(self) -> Event | None:
        # Only between the provider's events: never inside one it has sent half of.
        return None if self._events.inside_event else KEEPALIVE
