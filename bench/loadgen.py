"""The bench's client: asyncio, raw transports, a minimal HTTP/1.1 and SSE reader of its own.

The same code calls every side (the stand-in alone, mcpd, LiteLLM), and one process holds thousands of
streams. Standard library only. Times are `time.monotonic()` (CLOCK_MONOTONIC: the clock the stand-in
stamps its events with), taken once per `data_received`: every event in one read arrived together.

- `closed_loop(call, total, concurrency)`: `concurrency` kept-alive connections (opened and warmed by one
  untimed request each), each sending its next request when the last answer is complete.
- `simultaneous(call, n, deadline)`: n fresh connections at once, one request each, all held until they
  end or the deadline passes (what is left then is a "timeout").
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

STAMP = re.compile(rb"@(\d+\.\d{6})")  # the stand-in's write time in each content event
TIMEOUT = 10.0  # seconds per request in closed loops: the bench never waits forever


@dataclass(frozen=True)
class Call:
    """One kind of request, as the bytes sent on the wire."""

    host: str
    port: int
    request: bytes

    @classmethod
    def post(cls, url: str, headers: dict[str, str], body: bytes) -> Call:
        parts = urlsplit(url)
        head = "".join(f"{k}: {v}\r\n" for k, v in {
            "Host": parts.netloc, "Content-Type": "application/json", "Accept": "*/*",
            "Content-Length": str(len(body)), **headers}.items())
        return cls(parts.hostname or "127.0.0.1", parts.port or 80,
                   f"POST {parts.path} HTTP/1.1\r\n{head}\r\n".encode() + body)


@dataclass
class Outcome:
    """One request: when it was sent, when its first event (or whole answer) and its end arrived."""

    sent: float = 0.0
    first: float = 0.0  # first SSE event; for a plain answer, its end
    end: float = 0.0
    events: int = 0
    done: bool = False  # the stream's last event ([DONE] or message_stop) arrived
    lags: list[float] = field(default_factory=list)  # per stamped event: arrival - stand-in's write
    status: int = 0
    error: str = ""
    detail: bytes = b""  # the start of an error answer

    @property
    def latency(self) -> float:
        return self.end - self.sent

    @property
    def ttfc(self) -> float:
        return self.first - self.sent if self.first else float("inf")


class _Http(asyncio.Protocol):
    """One client connection: send a request, parse its answer (Content-Length or chunked SSE)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future | None = None
        self._out = Outcome()
        self._buf = b""
        self._sse = b""
        self._state = 0  # 0 headers, 1 Content-Length body, 2 chunked body
        self._length = 0
        self._timer: asyncio.TimerHandle | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport, self.reusable = None, False
        self._fail("connection closed" if exc is None else f"connection lost: {exc}")

    def send(self, request: bytes, outcome: Outcome, timeout: float | None = None) -> asyncio.Future:
        """Write the request; the future gets the outcome when the answer is complete, fails or times out."""
        loop = asyncio.get_running_loop()
        self._out, self._buf, self._sse, self._state = outcome, b"", b"", 0
        self._waiter = loop.create_future()
        if self.transport is None:
            self._fail("not connected")
            return self._waiter
        if timeout is not None:  # a timer, not wait_for: no task per request
            self._timer = loop.call_later(timeout, self._timed_out)
        outcome.sent = time.monotonic()
        self.transport.write(request)
        return self._waiter

    def _timed_out(self) -> None:
        self._fail("timeout")
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._out.error = self._out.error or error
            self._waiter.set_result(self._out)

    def _finish(self, now: float) -> None:
        out = self._out
        out.end = now
        out.first = out.first or now
        if out.status != 200:
            out.error = f"HTTP {out.status}"
        elif self._state == 2 and not out.done:
            out.error = "stream ended without its last event"
        if self._timer is not None:
            self._timer.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(out)
        if not self.reusable and self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf + data if self._buf else data
        if self._state == 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            head = buf[:end].lower()
            self._out.status = int(head[9:12])
            self.reusable = b"\r\nconnection: close" not in head
            if b"\r\ntransfer-encoding: chunked" in head:
                self._state = 2
            else:
                length = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
                self._state, self._length = 1, int(length.group(1)) if length else 0
            buf = buf[end + 4:]
        if self._state == 1:
            if len(buf) < self._length:
                self._buf = buf
                return
            if self._out.status != 200:
                self._out.detail = buf[:300]
            self._buf = b""
            self._finish(now)
            return
        pos = 0
        while True:  # chunked: size line, data, CRLF; the zero chunk ends the answer
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            if len(buf) < eol + 2 + size + 2:
                break
            if size == 0:
                self._buf = b""
                self._finish(now)
                return
            self._events(buf[eol + 2:eol + 2 + size], now)
            pos = eol + 2 + size + 2
        self._buf = buf[pos:]

    def _events(self, data: bytes, now: float) -> None:
        """Split the decoded body into SSE events (blank-line separated, LF or CRLF)."""
        sse = self._sse + data
        if b"\r" in sse:
            sse = sse.replace(b"\r\n", b"\n")
        out = self._out
        if out.status != 200 and not out.detail:
            out.detail = sse[:300]
        while (cut := sse.find(b"\n\n")) >= 0:
            event, sse = sse[:cut], sse[cut + 2:]
            out.events += 1
            if not out.first:
                out.first = now
            stamp = STAMP.search(event)
            if stamp:
                out.lags.append(now - float(stamp.group(1)))
            if event.endswith(b"data: [DONE]") or event.startswith(b"event: message_stop"):
                out.done = True
        self._sse = sse


async def _connect(call: Call) -> _Http:
    _, conn = await asyncio.get_running_loop().create_connection(_Http, call.host, call.port)
    return conn


async def _fetch(conn: _Http, call: Call, timeout: float) -> Outcome:
    return await conn.send(call.request, Outcome(), timeout)


async def _closed_loop(call: Call, total: int, concurrency: int, timeout: float,
                       meter: Callable[[], float] | None) -> tuple[float, list[Outcome], float]:
    conns = await asyncio.gather(*(_connect(call) for _ in range(concurrency)))
    for warm in await asyncio.gather(*(_fetch(c, call, timeout) for c in conns)):
        if warm.error:
            for c in conns:
                c.close()
            raise RuntimeError(f"{call.host}:{call.port}: {warm.error}: {warm.detail[:300]!r}")
    outcomes: list[Outcome] = []
    remaining = total

    async def worker(conn: _Http) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            out = await _fetch(conn, call, timeout)
            outcomes.append(out)
            if not conn.reusable or out.error:
                conn.close()
                conn = await _connect(call)
        conn.close()

    metered = meter() if meter else 0.0
    started = time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.monotonic() - started
    return wall, outcomes, (meter() - metered if meter else 0.0)


def closed_loop(call: Call, total: int, concurrency: int, timeout: float = TIMEOUT,
                meter: Callable[[], float] | None = None) -> tuple[float, list[Outcome], float]:
    """`total` requests over `concurrency` kept-alive connections: (wall seconds, outcomes, what `meter`
    (e.g. a server's CPU seconds) grew by over the timed part, warm-up excluded)."""
    return asyncio.run(_closed_loop(call, total, concurrency, timeout, meter))


async def _simultaneous(call: Call, n: int, deadline: float, every: float,
                        sample: Callable[[], None] | None) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    outcomes = [Outcome() for _ in range(n)]
    conns: list[_Http] = []

    async def one(out: Outcome) -> None:
        out.sent = time.monotonic()
        try:
            _, conn = await loop.create_connection(_Http, call.host, call.port)
        except OSError as exc:
            out.error = f"connect: {exc.strerror or exc}"
            return
        conns.append(conn)
        sent = out.sent
        await conn.send(call.request, out)
        out.sent = sent  # from before the connect: a simultaneous client has to connect first
        conn.close()

    async def sampler() -> None:
        while sample is not None:
            sample()
            await asyncio.sleep(every)

    sampling = loop.create_task(sampler())
    tasks = [loop.create_task(one(out)) for out in outcomes]
    _, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    sampling.cancel()
    for conn in conns:
        conn.close()
    for out in outcomes:
        if not out.end and not out.error:
            out.error = "timeout"
    if sample is not None:
        sample()
    return outcomes


def simultaneous(call: Call, n: int, deadline: float, every: float = 0.2,
                 sample: Callable[[], None] | None = None) -> list[Outcome]:
    """n requests on n fresh connections at once, each held to its end or the deadline; sample() every
    `every` seconds meanwhile (the server's memory)."""
    return asyncio.run(_simultaneous(call, n, deadline, every, sample))
