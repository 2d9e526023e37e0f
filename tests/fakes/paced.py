"""A loopback provider that holds thousands of paced streams at once (asyncio, one thread).

The thread-per-connection fake (tests/fakes/upstream.py) scripts faults; this one only streams: every
POST to .../chat/completions gets `events` chat.completion.chunk events `interval` seconds apart,
then [DONE] (and a usage chunk when stream_options.include_usage is asked for). Non-stream POSTs get
a chat.completion at once.
"""

from __future__ import annotations

import asyncio
import json
import threading

CHUNK = {"id": "chatcmpl-paced", "object": "chat.completion.chunk", "created": 1700000000, "model": "paced"}


def _event(data: dict | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    frame = f"data: {text}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def _delta(text: str, finish: str | None = None) -> dict:
    return {**CHUNK, "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}


class PacedUpstream:
    """`with PacedUpstream(events=4, interval=0.5) as fake: fake.url + "/v1"`; `fake.streams` counts
    the streams that were sent to their end, `fake.open` those in progress (and `fake.peak`)."""

    def __init__(self, events: int = 4, interval: float = 0.5):
        self.events, self.interval = events, interval
        self.streams = self.open = self.peak = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="paced-upstream")

    def __enter__(self) -> PacedUpstream:
        self._thread.start()
        assert self._ready.wait(10), "the paced upstream did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = json.loads(await reader.readexactly(length)) if length else {}
                if body.get("stream"):
                    await self._stream(writer, bool((body.get("stream_options") or {}).get("include_usage")))
                else:
                    reply = json.dumps({"id": "chatcmpl-paced", "object": "chat.completion", "created": 1700000000,
                                        "model": "paced", "choices": [{"index": 0, "finish_reason": "stop",
                                                                       "message": {"role": "assistant", "content": "hi"}}],
                                        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(reply), reply))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, usage: bool) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for n in range(self.events):
                if n:
                    await asyncio.sleep(self.interval)
                writer.write(_event(_delta(f"w{n} ")))
                await writer.drain()
            writer.write(_event(_delta("", "stop")))
            if usage:
                writer.write(_event({**CHUNK, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens":
                                                                          self.events, "total_tokens": 3 + self.events}}))
            writer.write(_event("[DONE]") + b"0\r\n\r\n")
            await writer.drain()
            self.streams += 1
        finally:
            self.open -= 1
