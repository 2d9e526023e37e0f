"""OpenAI chat.completions, the inbound API of /v1/chat/completions and /api/v1/llms/{name}/infer.

Its stream: `data: <chat.completion.chunk>` events, then `data: [DONE]`; after a failure, one
`data: {"error": …}` event and no [DONE] (CONTRACT.md).
https://platform.openai.com/docs/api-reference/chat-streaming
"""

from __future__ import annotations

from llms.adapters.base import OutChunk, SseEvent, StreamTranslator, Usage
from llms.streaming import Event
from mcpd import wirejson
from mcpd.errors import ApiError

DONE = Event(b"[DONE]")
KEEPALIVE = Event(b"keep-alive", kind="comment")


def chunk_event(chunk: OutChunk) -> Event:
    """One chunk as an event (a str chunk is JSON text already, relayed as it came)."""
    return Event(chunk.encode() if isinstance(chunk, str) else wirejson.dumps(chunk))


class ChatRelay:
    """A provider's stream, through its adapter's translator, as chat.completion.chunk events."""

    reads = "events"
    failed = None  # the translator raises a provider's error event: fail() tells the client

    def __init__(self, translator: StreamTranslator):
        self._translator = translator

    @property
    def usage(self) -> Usage:
        return self._translator.usage

    @property
    def done(self) -> bool:
        return self._translator.done

    def feed(self, item: SseEvent) -> list[Event]:
        return [chunk_event(chunk) for chunk in self._translator.feed(item)]

    def finish(self) -> list[Event]:
        return [*map(chunk_event, self._translator.finish()), DONE]

    def fail(self, error: ApiError) -> list[Event]:
        return [Event(wirejson.dumps(error.to_body()))]

    def keepalive(self) -> Event:
        return KEEPALIVE
