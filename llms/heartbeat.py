"""A blocking iterator read in the background, with a beat after every `interval` seconds of silence.

A provider can think for minutes before its next event. Proxies and load balancers cut connections
that stay silent that long, and a client that left is only noticed when something is written to it:
so the relay writes an SSE comment on each beat. The iterator (the provider's events) runs in a
thread of its own (a greenlet under gevent), which hands each item over as soon as it arrives.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class Heartbeat(Generic[T]):
    """Iterate to get the source's items, and None for each `interval` seconds without one; the
    source's exception is raised where its next item would have been."""

    def __init__(self, source: Iterator[T], interval: float):
        self._source, self._interval = source, interval
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._pump = threading.Thread(target=self._run, name="mcpd-stream-reader", daemon=True)
        self._pump.start()

    def _run(self) -> None:
        try:
            for item in self._source:
                self._items.put(item)
        except BaseException as error:  # handed to the consumer, which decides
            self._items.put(_Failed(error))
        else:
            self._items.put(_END)

    def __iter__(self) -> Iterator[T | None]:
        while True:
            try:
                item = self._items.get(timeout=self._interval if self._interval > 0 else None)
            except queue.Empty:
                yield None
                continue
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def finished(self, timeout: float) -> bool:
        """Whether the source has run to its end (waiting up to `timeout` seconds for it)."""
        self._pump.join(timeout)
        return not self._pump.is_alive()

    @property
    def reading(self) -> bool:
        """The source is still being read (the consumer stopped first)."""
        return self._pump.is_alive()
