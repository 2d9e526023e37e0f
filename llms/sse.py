"""Server-sent events read from the bytes a passthrough relays: a copy is split into events, to read a
few of them (usage, the end, a failure); the bytes themselves go to the client as they came."""

from __future__ import annotations


class EventSplitter:
    """Splits a stream's bytes, fed as they arrive, into whole events: (name, data) pairs."""

    def __init__(self) -> None:
        self._pending = b""  # the start of an event not complete yet

    @property
    def inside_event(self) -> bool:
        """True while an event has begun and not ended (nothing may be sent between its parts)."""
        return bool(self._pending)

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """The events this chunk completes: their `event:` name (b"" if none) and joined `data:` lines."""
        self._pending += chunk
        events = []
        while True:
            end, size = _event_end(self._pending)
            if end < 0:
                return events
            events.append(_parts(self._pending[:end]))
            self._pending = self._pending[end + size:]


def _event_end(buffer: bytes) -> tuple[int, int]:
    """Where the first complete event of the buffer ends, and the length of the blank line that ends
    it (-1, 0 when none is complete yet)."""
    ends = [(buffer.find(sep), len(sep)) for sep in (b"\n\n", b"\r\n\r\n")]
    found = [(at, size) for at, size in ends if at >= 0]
    return min(found) if found else (-1, 0)


def _parts(block: bytes) -> tuple[bytes, bytes]:
    name, data = b"", []
    for line in block.splitlines():
        if line.startswith(b"event:"):
            name = line[6:].strip()
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
    return name, b"\n".join(data)
