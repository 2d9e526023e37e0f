"""Messages to an `anthropic` Llm: the client's body with the Llm's model, and the provider's bytes back.

Unknown fields, `cache_control`, any `thinking`, `context_management`, `output_config`, mid-conversation
system messages: all go up as the client wrote them (what a field needs, its `anthropic-beta` value, is
forwarded too: the only client headers that are). The reply and the event stream come back unchanged,
read only for usage.
"""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic import request_headers
from llms.adapters.anthropic.errors import error_from_event
from llms.adapters.anthropic.response import UsageTally, map_usage
from llms.adapters.base import Target, UpstreamRequest, Usage
from llms.adapters.errors import bad_response, event_json
from llms.inbound.messages.errors import error_body
from llms.sse import EventSplitter
from llms.streaming import Event
from mcpd import wirejson
from mcpd.errors import ApiError

PROVIDER = "anthropic"
PING = Event(b'{"type":"ping"}', name="ping")
# Only these events are read (for usage, the end, a failure); the rest pass unparsed.
_READ = {b"message_start", b"message_delta", b"message_stop", b"error"}


def upstream_request(target: Target, body: dict[str, Any], *, endpoint: str, version: str | None,
                     betas: str | None) -> UpstreamRequest:
    """POST {base_url}/{endpoint} with mcpd's key, the client's anthropic-version and anthropic-beta."""
    headers = request_headers(target.api_key)
    if version:
        headers["anthropic-version"] = version
    if betas:
        headers["anthropic-beta"] = betas
    return UpstreamRequest(url=f"{target.base_url}/{endpoint}", headers=headers,
                           json={**body, "model": target.model})


def usage_of(payload: Any) -> Usage:
    """The audit usage of a Message (of a count_tokens reply: none is billed)."""
    if not isinstance(payload, dict):
        raise bad_response(PROVIDER, "a reply that is not a JSON object")
    return map_usage(payload.get("usage"))[1]


class PassthroughRelay:
    """Relays the provider's stream byte for byte; reads a copy of its events for usage and its end."""

    reads = "bytes"

    def __init__(self) -> None:
        self._events = EventSplitter()
        self._tally = UsageTally()
        self._done = False
        self.failed: ApiError | None = None

    @property
    def usage(self) -> Usage:
        return self._tally.usage

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, item: bytes) -> list[Event]:
        for name, data in self._events.feed(item):
            if name in _READ:
                self._read(name, event_json(data.decode("utf-8", "replace"), PROVIDER))
        return [Event(item, kind="raw")]

    def _read(self, name: bytes, event: dict[str, Any]) -> None:
        if name == b"message_start":
            message = event.get("message")
            self._tally.update(message.get("usage") if isinstance(message, dict) else None)
        elif name == b"message_delta":
            self._tally.update(event.get("usage"))
        elif name == b"message_stop":
            self._done = True
        else:  # the provider's error event went to the client as it came; the stream ends with it
            self.failed = error_from_event(event)
            self._done = True

    def finish(self) -> list[Event]:
        return []

    def fail(self, error: ApiError) -> list[Event]:
        return [Event(wirejson.dumps(error_body(error)), name="error")]

    def keepalive(self) -> Event | None:
        # Only between the provider's events: never inside one it has sent half of.
        return None if self._events.inside_event else PING
