"""A minimal, fast OpenAI and Anthropic stand-in provider on 127.0.0.1 for the benchmarks.

One asyncio event loop, raw transports, canned bytes: a request costs tens of microseconds here, so the
figures show the proxy's cost rather than the stand-in's, and one process holds thousands of streams.

- `POST …/chat/completions`: a canned chat.completion, or (`"stream": true`) N chunk events, a finish
  chunk, a usage chunk when `stream_options.include_usage` is asked for (as OpenAI does), and `[DONE]`.
- `POST …/messages`: an Anthropic Messages reply, or its event stream (message_start, content_block_start,
  N text deltas, content_block_stop, message_delta, message_stop).
- Streams are written one socket write per content event; the first write carries the headers with the
  first event (as a real provider's first flush). Every content event carries ` @<time.monotonic()>` at
  the moment it was written (CLOCK_MONOTONIC, the same clock in every process), so a client reads how long
  the chunk took to reach it through a proxy. Without pacing every event goes out at once; a request whose
  body contains `pace_ms=<n>` (in the prompt, which proxies pass on) gets one event every n ms and the end
  of the stream n ms after the last one: `pace_ms=100` with 20 chunks is a 2-second stream.
- `GET /__stats`: connections accepted, requests served, streams open now (so a caller can wait for
  quiet). Anything else gets a 404.

    python bench/fast_upstream.py --chunks 20    # prints "PORT <n>", serves until stdin closes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time


def _compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


COMPLETION = _compact({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench stand-in."},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
})
MESSAGE = _compact({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
    "content": [{"type": "text", "text": "Hello from the bench stand-in."}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 6},
})


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return _compact({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                     "model": "bench-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


USAGE_CHUNK = _compact({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                        "model": "bench-model", "choices": [],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}})


def _framed(data: bytes, event: bytes | None = None) -> bytes:
    """One SSE event (with an `event:` line when given) as one HTTP/1.1 chunk."""
    sse = (b"event: " + event + b"\n" if event else b"") + b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(sse), sse)


def stream_frames(chunks: int, usage: bool) -> list[bytes]:
    """The chunked-encoded frames of an OpenAI stream, unstamped: `chunks` content events (the first also
    carries the role), the finish event, the usage event if asked, [DONE], and the terminating zero chunk."""
    frames = [_framed(_chunk({"role": "assistant", "content": "tok0"} if i == 0 else {"content": f" tok{i}"}))
              for i in range(chunks)]
    frames.append(_framed(_chunk({}, finish="stop")))
    if usage:
        frames.append(_framed(USAGE_CHUNK))
    frames.append(_framed(b"[DONE]"))
    frames.append(b"0\r\n\r\n")
    return frames


class OpenAiStream:
    """The frames of one OpenAI stream: head (with the first event), stamped content events, tail."""

    def __init__(self, usage: bool):
        tail = [_framed(_chunk({}, finish="stop"))] + ([_framed(USAGE_CHUNK)] if usage else [])
        self.tail = b"".join([*tail, _framed(b"[DONE]"), b"0\r\n\r\n"])

    @staticmethod
    def event(i: int, stamp: float) -> bytes:
        role = b'"role":"assistant",' if i == 0 else b""
        return _framed(b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
                       b'"model":"bench-model","choices":[{"index":0,"delta":{%s"content":" tok%d @%.6f"},'
                       b'"finish_reason":null}]}' % (role, i, stamp))

    def head(self, stamp: float) -> bytes:
        return self.event(0, stamp)


class AnthropicStream:
    """The frames of one Anthropic Messages stream, as https://docs.anthropic.com/en/api/messages-streaming."""

    START = (_framed(_compact({"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        b"message_start")
        + _framed(b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
                  b"content_block_start"))

    def __init__(self, chunks: int):
        self.tail = b"".join([
            _framed(b'{"type":"content_block_stop","index":0}', b"content_block_stop"),
            _framed(_compact({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                              "usage": {"output_tokens": chunks}}), b"message_delta"),
            _framed(b'{"type":"message_stop"}', b"message_stop"),
            b"0\r\n\r\n"])

    @staticmethod
    def event(i: int, stamp: float) -> bytes:
        return _framed(b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
                       b'"text":" tok%d @%.6f"}}' % (i, stamp), b"content_block_delta")

    def head(self, stamp: float) -> bytes:
        return self.START + self.event(0, stamp)


def _json_head(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: keep-alive\r\n\r\n%s" % (len(body), body))


COMPLETION_REPLY = _json_head(COMPLETION)
MESSAGE_REPLY = _json_head(MESSAGE)
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
STREAM = re.compile(rb'"stream"\s*:\s*true')
USAGE = re.compile(rb'"include_usage"\s*:\s*true')
PACE = re.compile(rb"pace_ms=(\d+)")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


class Stats:
    def __init__(self) -> None:
        self.connections = 0  # accepted so far: shows whether callers keep their connections alive
        self.requests = 0
        self.streaming = 0  # streams open now


class Connection(asyncio.Protocol):
    """One keep-alive connection: requests are answered in order; a stream holds the connection."""

    def __init__(self, stats: Stats, chunks: int):
        self._stats, self._chunks = stats, chunks
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._streaming: asyncio.TimerHandle | None = None  # the next write of a paced stream
        self._busy = False  # a stream is being written: later requests wait for it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # asyncio sets TCP_NODELAY
        self._transport = transport  # type: ignore[assignment]
        self._stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._streaming is not None:
            self._streaming.cancel()
        if self._busy:
            self._stats.streaming -= 1
        self._transport, self._busy = None, False

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._serve()

    def _serve(self) -> None:
        while not self._busy and self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = CONTENT_LENGTH.search(self._buf, 0, end + 2)
            total = end + 4 + (int(length.group(1)) if length else 0)
            if len(self._buf) < total:
                return
            head, body, self._buf = self._buf[:end], self._buf[end + 4:total], self._buf[total:]
            self._answer(head.split(b"\r\n", 1)[0].split(), body)

    def _answer(self, request_line: list[bytes], body: bytes) -> None:
        write = self._transport.write  # type: ignore[union-attr]
        if len(request_line) >= 2 and request_line[0] == b"GET" and request_line[1] == b"/__stats":
            s = self._stats
            write(_json_head(_compact({"connections": s.connections, "requests": s.requests,
                                       "streaming": s.streaming})))
            return
        self._stats.requests += 1
        path = request_line[1].split(b"?")[0].rstrip(b"/") if len(request_line) >= 2 else b""
        anthropic = path.endswith(b"/messages")
        if request_line[0] != b"POST" or not (anthropic or path.endswith(b"/chat/completions")):
            write(NOT_FOUND)
            return
        if not STREAM.search(body):
            write(MESSAGE_REPLY if anthropic else COMPLETION_REPLY)
            return
        stream = AnthropicStream(self._chunks) if anthropic else OpenAiStream(USAGE.search(body) is not None)
        pace = PACE.search(body)
        interval = int(pace.group(1)) / 1000 if pace else 0.0
        write(SSE_HEAD + stream.head(time.monotonic()))
        if not interval:
            for i in range(1, self._chunks):
                write(stream.event(i, time.monotonic()))
            write(stream.tail)
            return
        self._busy = True
        self._stats.streaming += 1
        loop = asyncio.get_running_loop()
        started = loop.time()

        def tick(i: int) -> None:
            if self._transport is None:
                return
            if i < self._chunks:
                self._transport.write(stream.event(i, time.monotonic()))
                self._streaming = loop.call_at(started + (i + 1) * interval, tick, i + 1)
                return
            self._transport.write(stream.tail)
            self._streaming, self._busy = None, False
            self._stats.streaming -= 1
            self._serve()  # a request that arrived meanwhile

        self._streaming = loop.call_at(started + interval, tick, 1)


async def serve(chunks: int, ready) -> None:
    """Listen on a free loopback port, call ready(port), serve until stdin closes."""
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(stats, chunks), "127.0.0.1", 0, backlog=4096,
                                      reuse_address=True)
    ready(server.sockets[0].getsockname()[1])
    await loop.run_in_executor(None, sys.stdin.read)  # serve until the parent closes our stdin (or dies)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(serve(args.chunks, lambda port: print(f"PORT {port}", flush=True)))


if __name__ == "__main__":
    main()
