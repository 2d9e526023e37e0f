"""Faults of a provider on the wire, as replies of the loopback fake (tests/fakes/upstream.py).

Each is a reply like ``json_reply`` or ``sse_reply`` (queue it with ``fake.reply(...)``), written by hand
on the socket:

- ``reset_reply``: a status line, part of a body, then a TCP reset (RST: SO_LINGER 0, then close), where
  ``sse_reply(drop_after=)`` ends with an orderly close (FIN); ``reset_reply()`` alone resets before a byte.
- ``hang_reply``: the request is read, then nothing at all is sent, not even a status line.
- ``stall_reply``: a status line and part of a body, then silence (``sse_reply(hang_after=)`` for streams).
- ``trickle_reply``: a body written one byte at a time (one HTTP chunk per byte when chunked).
- ``paced_reply``: a body in pieces with pauses between them: slow, but never silent for long.
- ``huge_reply``: a body of ``size`` bytes generated as it is written (never held in memory): a valid
  chat.completion prefix and filler, declared by Content-Length or chunked, gzip-encoded if asked.
- ``HTML_ERROR_PAGE``, ``NOT_JSON``: bodies for ``raw_reply`` (a proxy's error page, garbage as JSON).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.upstream import _Handler

SSE = "text/event-stream; charset=utf-8"
HTML_ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad "
                   b"Gateway</h1></center><hr><center>nginx</center></body></html>\n")
NOT_JSON = b"\x00\xff\xfe garbage {\"choices\": [ \x89PNG\r\n\x1a\n"
_WRITE = 64 * 1024
_MIB = 1024 * 1024


@dataclass(frozen=True)
class WireReply:
    """A reply written by hand: [silence], [a status line and headers], body pieces, then an ending.

    ``pieces`` makes the body's pieces (called once per reply, so that a huge body is generated as it is
    written); ``chunked``: one HTTP chunk per piece (per byte when trickling), else Content-Length
    ``length`` (the pieces' total when None). ``end``: "complete", "reset" (RST instead of the rest),
    "fin" (an orderly close instead of the rest) or "hang" (silence for FakeUpstream.hang_seconds, then FIN).
    """

    pieces: Callable[[], Iterable[bytes]]
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    chunked: bool = False
    length: int | None = None
    trickle: float | None = None  # seconds between bytes: one byte per write
    interval: float = 0.0  # seconds between pieces
    end: str = "complete"
    head: bool = True  # False: no status line at all
    silence: float | None = None  # seconds of nothing first (None: FakeUpstream.hang_seconds)

    def play(self, handler: _Handler) -> None:
        """Write this reply on the handler's connection."""
        if self.silence is not None or not self.head:
            outcome = handler._pause(handler.hang_seconds if self.silence is None else self.silence)
            if outcome != "ok" or not self.head:
                self._close(handler, reset=self.end == "reset" and outcome == "ok")
                return
        defaults = {"Content-Type": self.content_type}
        if self.chunked:
            defaults["Transfer-Encoding"] = "chunked"
        else:
            defaults["Content-Length"] = str(self.length if self.length is not None else
                                             sum(map(len, self.pieces())))
        handler._head(self.status, defaults, self.headers)
        try:
            for n, piece in enumerate(self.pieces()):
                if n and self.interval:
                    time.sleep(self.interval)
                for part in _bytes_of(piece) if self.trickle is not None else (piece,):
                    if not part:
                        continue
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if self.chunked else part)
                    if self.trickle:
                        time.sleep(self.trickle)
            if self.end == "complete":
                if self.chunked:
                    handler.wfile.write(b"0\r\n\r\n")
                return
            if self.end == "hang":
                handler._pause(handler.hang_seconds)
        except OSError:  # the client went away
            handler.close_connection = True
            return
        self._close(handler, reset=self.end == "reset")

    @staticmethod
    def _close(handler: _Handler, *, reset: bool) -> None:
        handler.close_connection = True
        conn = handler.connection
        with contextlib.suppress(OSError):
            if reset:  # close with SO_LINGER 0: the kernel sends RST, not FIN, and drops what is unsent
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.rfile.close()  # the makefile reference would keep the socket open past close()
                conn.close()
            else:
                conn.shutdown(socket.SHUT_RDWR)


def _bytes_of(piece: bytes) -> Iterator[bytes]:
    return (piece[i:i + 1] for i in range(len(piece)))


def _encoded(pieces: Iterable[str | bytes]) -> tuple[bytes, ...]:
    return tuple(p.encode() if isinstance(p, str) else bytes(p) for p in pieces)


def reset_reply(pieces: Iterable[str | bytes] = (), *, status: int = 200, content_type: str = "application/json",
                chunked: bool = False, length: int | None = None, head: bool | None = None) -> WireReply:
    """The pieces, then a reset. With no pieces (and ``head`` unset) the reset comes before any status line.

    For a body cut short, give its first part and the whole body's ``length``; for a stream, frames
    (the last one may be half a frame) with ``chunked=True`` and ``content_type=SSE``."""
    parts = _encoded(pieces)
    return WireReply(lambda: parts, status, content_type, {}, chunked, length, end="reset",
                     head=bool(parts) if head is None else head, silence=0.0 if not parts and head is None else None)


def hang_reply(seconds: float | None = None) -> WireReply:
    """Read the request, then send nothing for ``seconds`` (FakeUpstream.hang_seconds by default, cut
    short by stop() or the client leaving), then close."""
    return WireReply(lambda: (), head=False, silence=seconds, end="fin")


def stall_reply(pieces: Iterable[str | bytes], *, length: int, status: int = 200,
                content_type: str = "application/json") -> WireReply:
    """The first part of a ``length``-byte body, then nothing (until the client leaves)."""
    parts = _encoded(pieces)
    return WireReply(lambda: parts, status, content_type, {}, False, length, end="hang")


def paced_reply(pieces: Iterable[str | bytes], *, interval: float, status: int = 200,
                content_type: str = "application/json") -> WireReply:
    """A body of a declared length in pieces, ``interval`` seconds apart (``sse_reply(interval=)`` for streams)."""
    parts = _encoded(pieces)
    return WireReply(lambda: parts, status, content_type, {}, False, interval=interval)


def trickle_reply(pieces: Iterable[str | bytes], *, pause: float = 0.0005, status: int = 200,
                  content_type: str = "application/json", chunked: bool = False) -> WireReply:
    """The whole body, one byte per write, ``pause`` seconds apart (a chunk per byte when chunked)."""
    parts = _encoded(pieces)
    return WireReply(lambda: parts, status, content_type, {}, chunked, trickle=pause)


HUGE_PREFIX = (b'{"id":"chatcmpl-huge","object":"chat.completion","created":1700000000,"model":"huge",'
               b'"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"')


def huge_reply(size: int = 60 * 1024 * 1024, *, prefix: bytes = HUGE_PREFIX, chunked: bool = False,
               gzip: bool = False, content_type: str = "application/json", status: int = 200) -> WireReply:
    """A ``size``-byte body (before encoding): ``prefix`` then filler, generated as it is written. Its
    length is declared unless chunked; ``gzip``: gzip-encoded (a few dozen KB on the wire), chunked."""

    def plain() -> Iterator[bytes]:
        yield prefix
        left = size - len(prefix)
        block = b"x" * _WRITE
        while left > 0:
            yield block[:left]
            left -= _WRITE

    headers = {"Content-Encoding": "gzip"} if gzip else {}
    pieces = (lambda: _gzipped(prefix, size)) if gzip else plain
    return WireReply(pieces, status, content_type, headers, chunked or gzip, None if chunked or gzip else size)


def _gzipped(prefix: bytes, size: int) -> Iterator[bytes]:
    """huge_reply's body gzip-encoded, as gzip members one after another (one decoder reads them as one
    body): the prefix, then the filler a mebibyte per member, compressed once and kept."""
    yield _gzip(prefix)
    left = size - len(prefix)
    while left >= _MIB:
        yield _filler_member()
        left -= _MIB
    if left > 0:
        yield _gzip(memoryview(_filler())[:left])


def _gzip(data: bytes | memoryview) -> bytes:
    encoder = zlib.compressobj(6, zlib.DEFLATED, 31)
    return encoder.compress(data) + encoder.flush()


@functools.cache
def _filler() -> bytes:
    return b"x" * _MIB


@functools.cache
def _filler_member() -> bytes:
    return _gzip(_filler())
