"""Server-sent events read from a provider's bytes as they arrive: split into whole events, each parsed.

The transport splits every stream (llms/transport.py): a passthrough relays the provider's bytes event by
event, exactly as they came, and the other relays get parsed events. Splitting takes time linear in the
bytes however the network cuts them (a one-byte trickle, or one event of many megabytes), and an event
larger than a limit is refused before it is held.
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import re

# A blank line ends an event: two line ends in a row, each CRLF, LF or CR.
_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
_LONGEST_BLANK_LINE = 4


class EventTooLarge(ValueError):
    """An event grew past the splitter's limit before it ended."""


class EventSplitter:
    """Splits a stream's bytes, fed as they arrive, into whole events."""

    def __init__(self, limit: int | None = None) -> None:
        self._pending = bytearray()  # the start of an event not complete yet
        self._scanned = 0  # how far _pending has been searched for a blank line
        self._limit = limit

    @property
    def inside_event(self) -> bool:
        """True while an event has begun and not ended (nothing may be sent between its parts)."""
        return bool(self._pending)

    def split(self, chunk: bytes) -> tuple[bytes, list[bytes]]:
        """The bytes of the events this chunk completes, as they came (b"" when none), and each of those
        events without its blank line."""
        pending = self._pending
        pending += chunk
        blocks, start = [], 0
        searched_from = max(0, self._scanned - _LONGEST_BLANK_LINE + 1)
        while found := _BLANK_LINE.search(pending, max(start, searched_from)):
            blocks.append(bytes(pending[start:found.start()]))
            start = found.end()
        done = b""
        if start:
            done = bytes(pending[:start])
            del pending[:start]  # what is left came with this chunk: no byte is moved twice
        self._scanned = len(pending)
        if self._limit is not None and len(pending) > self._limit:
            raise EventTooLarge(f"an event larger than {self._limit} bytes")
        return done, blocks

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """The events this chunk completes: their `event:` name (b"" if none) and joined `data:` lines."""
        return [_parts(block) for block in self.split(chunk)[1]]

    def rest(self) -> bytes:
        """What is left once the stream has ended: an event without its blank line (b"" if none)."""
        rest = bytes(self._pending)
        self._pending.clear()
        self._scanned = 0
        return rest


def _parts(block: bytes) -> tuple[bytes, bytes]:
    name, data = b"", []
    for line in block.splitlines():
        if line.startswith(b"event:"):
            name = line[6:].strip()
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
    return name, b"\n".join(data)


def parse_event(block: bytes) -> tuple[str, str] | None:
    """An event's name ("message" when it has none) and data (its `data:` lines joined by a newline), as
    the specification reads them; None for an event without data (a comment, a bare `event:`), which is
    not dispatched. Raises UnicodeDecodeError for bytes that are not UTF-8."""
    name, data = "", []
    for raw in block.splitlines():
        line = raw.decode("utf-8")
        if not line.strip() or line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if not data:
        return None
    return name or "message", "\n".join(data)
