"""A minimal, fast OpenAI chat.completions stand-in on 127.0.0.1 for the overhead bench.

One thread per keep-alive connection, raw sockets, canned bytes, no delay: a request costs tens of
microseconds here, so the bench's figures show mcpd's cost rather than the stand-in's. It answers
`POST …/chat/completions` with a canned chat.completion, or (`"stream": true`) with N chunk events
written one socket write each, a finish chunk, a usage chunk when `stream_options.include_usage`
is asked for (as OpenAI does), and `[DONE]`. `GET /__stats` counts connections accepted and
requests served (to see whether callers keep connections alive). Anything else gets a 404.

    python bench/fast_upstream.py --chunks 20    # prints "PORT <n>", serves until stdin closes
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import sys
import threading

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench stand-in."},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}, separators=(",", ":")).encode()


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                       "model": "bench-model",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                      separators=(",", ":")).encode()


USAGE_CHUNK = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                          "model": "bench-model", "choices": [],
                          "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}},
                         separators=(",", ":")).encode()


def _framed(data: bytes) -> bytes:
    """One SSE event as one HTTP/1.1 chunk."""
    event = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def stream_frames(chunks: int, usage: bool) -> list[bytes]:
    """The chunked-encoded frames of a stream: `chunks` content events (the first also carries the role),
    the finish event, the usage event if asked, [DONE], and the terminating zero chunk."""
    frames = [_framed(_chunk({"role": "assistant", "content": "tok0"} if i == 0 else {"content": f" tok{i}"}))
              for i in range(chunks)]
    frames.append(_framed(_chunk({}, finish="stop")))
    if usage:
        frames.append(_framed(USAGE_CHUNK))
    frames.append(_framed(b"[DONE]"))
    frames.append(b"0\r\n\r\n")
    return frames


JSON_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
             b"Connection: keep-alive\r\n\r\n" % len(COMPLETION))
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class FastUpstream:
    """Serve from daemon threads; `start()` binds a free loopback port, `url` is the base URL (…/v1)."""

    def __init__(self, chunks: int = 20):
        self.chunks = chunks
        self._frames = {False: stream_frames(chunks, False), True: stream_frames(chunks, True)}
        self._sock: socket.socket | None = None
        self.port = 0
        self.connections = 0  # accepted so far (one accept thread): shows whether callers keep alive
        self._served = itertools.count()  # next() is atomic under the GIL: no lock on the hot path
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FastUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        self._sock, self.port = sock, sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="fast-upstream").start()
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                self._answer(conn, lines[0], body)
        except OSError:
            return
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, request_line: bytes, body: bytes) -> None:
        parts = request_line.split()
        if len(parts) >= 2 and parts[0] == b"GET" and parts[1] == b"/__stats":
            stats = json.dumps({"connections": self.connections, "requests": self.requests}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(stats), stats))
            return
        self.requests = next(self._served) + 1
        if len(parts) < 2 or parts[0] != b"POST" or not parts[1].rstrip(b"/").endswith(b"/chat/completions"):
            conn.sendall(NOT_FOUND)
            return
        # Cheap checks instead of a JSON parse: the bench's bodies are compact (no spaces after ':').
        if b'"stream":true' not in body.replace(b" ", b""):
            conn.sendall(JSON_HEAD + COMPLETION)
            return
        usage = b'"include_usage":true' in body.replace(b" ", b"")
        frames = self._frames[usage]
        conn.sendall(SSE_HEAD + frames[0])  # headers with the first event, as a real provider's first flush
        for frame in frames[1:]:
            conn.sendall(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    upstream = FastUpstream(args.chunks).start()
    print(f"PORT {upstream.port}", flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin (or dies)
    upstream.stop()


if __name__ == "__main__":
    main()
