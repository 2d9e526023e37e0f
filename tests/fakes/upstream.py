"""A real HTTP server on 127.0.0.1 that plays OpenAI (chat.completions, responses), Anthropic and Vault KV v2
for the test suite.

Stdlib only: ``ThreadingHTTPServer`` in a daemon thread, HTTP/1.1 keep-alive, chunked SSE streams
written and flushed frame by frame. Script replies with ``fake.reply(...)`` (FIFO, POSTs only);
with nothing queued the default responders answer (see ``_Handler._default``).

    with FakeUpstream() as fake:
        fake.reply(json_reply({"error": {...}}, status=429, headers={"retry-after": "1"}))
        base_url = fake.url + "/v1"
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
HELLO = "Hello from the fake provider."
_POLL = 0.05  # seconds between checks for stop() / client gone while pausing


# ----------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class JsonReply:
    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RawReply:
    data: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SseReply:
    frames: tuple[bytes, ...]
    interval: float = 0.0
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    hang_after: int | None = None
    drop_after: int | None = None


Reply = JsonReply | RawReply | SseReply  # or a reply with play(handler): the faults of tests/fakes/faults.py


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None, delay: float = 0.0) -> JsonReply:
    """A JSON response (any body, a str too, is json.dumps-ed); ``delay`` seconds pass before the status line."""
    return JsonReply(body, status, dict(headers or {}), delay)


def raw_reply(
    data: bytes, status: int = 200, content_type: str = "application/json", headers: Mapping[str, str] | None = None
) -> RawReply:
    """Exactly these bytes as the body (for malformed payloads), with Content-Length."""
    return RawReply(data, status, content_type, dict(headers or {}))


def sse_reply(
    frames: list[str] | list[bytes] | list[str | bytes],
    interval: float = 0.0,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    hang_after: int | None = None,
    drop_after: int | None = None,
) -> SseReply:
    """A chunked text/event-stream: one HTTP chunk per pre-framed SSE frame, ``interval`` s apart.

    ``hang_after=N``: after N frames send nothing more and hold the connection open for
    ``FakeUpstream.hang_seconds`` (or until stop() / the client closes), then close without the final chunk.
    ``drop_after=N``: after N frames close the socket (FIN, no terminating chunk).
    """
    encoded = tuple(f.encode() if isinstance(f, str) else bytes(f) for f in frames)
    return SseReply(encoded, interval, status, dict(headers or {}), hang_after, drop_after)


# ----------------------------------------------------------------------------- frame builders


def sse_frame(data: Any, event: str | None = None) -> str:
    """One SSE frame: optional ``event:`` line, then ``data:`` (dicts/lists are compact JSON)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def openai_stream_frames(
    text_pieces: list[str],
    model: str = "gpt-4o-mini",
    include_usage: bool = False,
    finish_reason: str = "stop",
    usage: Mapping[str, int] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> list[str]:
    """chat.completion.chunk frames: role chunk, one chunk per piece, one per tool call (whole), finish
    chunk, [usage chunk], [DONE]."""
    base = {"id": f"chatcmpl-fake{uuid.uuid4().hex[:20]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:  # OpenAI sends "usage": null on every chunk but the last when asked for usage
            body["usage"] = None
        return sse_frame(body)

    frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
    frames += [chunk({"content": piece}) for piece in text_pieces]
    frames += [chunk({"tool_calls": [call]}) for call in tool_calls or []]
    frames.append(chunk({}, finish_reason))
    if include_usage:
        totals = dict(usage or {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15})
        frames.append(sse_frame({**base, "choices": [], "usage": totals}))
    frames.append("data: [DONE]\n\n")
    return frames


def anthropic_stream_frames(
    text_pieces: list[str],
    model: str = "claude-sonnet-4-5-20250929",
    stop_reason: str = "end_turn",
    input_tokens: int = 12,
    output_tokens: int = 7,
) -> list[str]:
    """Messages API stream of one text block: message_start .. ping .. text_deltas .. message_stop."""
    message = {"id": f"msg_fake{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant", "content": [],
               "model": model, "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": input_tokens, "output_tokens": 1}}
    frames = [
        sse_frame({"type": "message_start", "message": message}, "message_start"),
        sse_frame({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                  "content_block_start"),
        sse_frame({"type": "ping"}, "ping"),
    ]
    frames += [sse_frame({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                         "content_block_delta") for p in text_pieces]
    frames += [
        sse_frame({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse_frame({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                   "usage": {"output_tokens": output_tokens}}, "message_delta"),
        sse_frame({"type": "message_stop"}, "message_stop"),
    ]
    return frames


def responses_object(
    model: str = "gpt-4.1-mini",
    output: list[dict[str, Any]] | None = None,
    status: str = "completed",
    usage: Mapping[str, Any] | None = None,
    request: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Responses API `response` object as OpenAI documents it (the request's configuration echoed)."""
    req = dict(request or {})
    if output is None:
        output = [_message_item(HELLO)]
    if usage is None and status != "in_progress":
        usage = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 6,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17}
    now = int(time.time())
    return {
        "id": f"resp_fake{uuid.uuid4().hex}", "object": "response", "created_at": now, "status": status,
        "background": False, "completed_at": now if status == "completed" else None, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
        "model": model, "output": output, "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": None, "prompt_cache_key": req.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": req.get("store", True),
        "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.get("tool_choice", "auto"), "tools": req.get("tools", []), "top_p": 1.0,
        "truncation": "disabled", "usage": dict(usage) if usage else None, "user": None, "metadata": {},
    }


def _message_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": f"msg_fake{uuid.uuid4().hex}", "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]}


def responses_stream_frames(
    text_pieces: list[str],
    model: str = "gpt-4.1-mini",
    function_calls: list[dict[str, str]] | None = None,
    reasoning: str | None = None,
    status: str = "completed",
    usage: Mapping[str, Any] | None = None,
    request: Mapping[str, Any] | None = None,
) -> list[str]:
    """A Responses API stream as OpenAI sends it: created, in_progress, [a reasoning item with an encrypted
    summary], a message item of ``text_pieces``, one function_call item per ``{"name", "arguments"}`` (its
    arguments in two deltas), then response.completed (or .incomplete); every event numbered."""
    final = responses_object(model, [], status, usage, request)
    first = {**final, "status": "in_progress", "usage": None, "completed_at": None, "incomplete_details": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": first},
                                    {"type": "response.in_progress", "response": first}]
    output: list[dict[str, Any]] = final["output"]

    def item_events(item: dict[str, Any], middle: list[dict[str, Any]], done: dict[str, Any]) -> None:
        index = len(output)
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.extend({**e, "item_id": item["id"], "output_index": index} for e in middle)
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        output.append(done)

    if reasoning is not None:
        rid = f"rs_fake{uuid.uuid4().hex}"
        part = {"type": "summary_text", "text": reasoning}
        item_events({"id": rid, "type": "reasoning", "encrypted_content": "gAAAAAfake-start", "summary": []}, [
            {"type": "response.reasoning_summary_part.added", "summary_index": 0, "part": {**part, "text": ""}},
            {"type": "response.reasoning_summary_text.delta", "summary_index": 0, "delta": reasoning},
            {"type": "response.reasoning_summary_text.done", "summary_index": 0, "text": reasoning},
            {"type": "response.reasoning_summary_part.done", "summary_index": 0, "part": part},
        ], {"id": rid, "type": "reasoning", "encrypted_content": "gAAAAAfake-final", "summary": [part]})
    if text_pieces:
        text = "".join(text_pieces)
        done = _message_item(text, "incomplete" if status == "incomplete" else "completed")
        part = done["content"][0]
        item_events({**done, "status": "in_progress", "content": []}, [
            {"type": "response.content_part.added", "content_index": 0, "part": {**part, "text": ""}},
            *({"type": "response.output_text.delta", "content_index": 0, "delta": piece, "logprobs": []}
              for piece in text_pieces),
            {"type": "response.output_text.done", "content_index": 0, "text": text, "logprobs": []},
            {"type": "response.content_part.done", "content_index": 0, "part": part},
        ], done)
    for call in function_calls or []:
        args = call["arguments"]
        done = {"type": "function_call", "id": f"fc_fake{uuid.uuid4().hex}",
                "call_id": call.get("call_id") or f"call_fake{uuid.uuid4().hex[:24]}", "name": call["name"],
                "arguments": args, "status": "completed"}
        half = len(args) // 2
        item_events({**done, "arguments": "", "status": "in_progress"}, [
            {"type": "response.function_call_arguments.delta", "delta": args[:half]},
            {"type": "response.function_call_arguments.delta", "delta": args[half:]},
            {"type": "response.function_call_arguments.done", "arguments": args},
        ], done)
    terminal = "response.incomplete" if status == "incomplete" else "response.completed"
    events.append({"type": terminal, "response": final})
    return [sse_frame({**event, "sequence_number": n}, event["type"]) for n, event in enumerate(events)]


def sse_file_frames(path: str | Path) -> list[str]:
    """Split a recorded .sse file (blank-line separated events) into frames; bare names resolve in tests/data."""
    p = Path(path)
    if not p.exists() and not p.is_absolute():
        p = DATA_DIR / p
    text = p.read_text(encoding="utf-8").replace("\r\n", "\n")
    return [block.strip("\n") + "\n\n" for block in text.split("\n\n") if block.strip("\n")]


def connection_refused_url() -> str:
    """A loopback URL on which nothing listens (a port just bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------- recording


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers (the last value wins for repeats)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._items = {k.lower(): (k, v) for k, v in pairs}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # the request target as sent, query string included
    headers: Headers
    body: bytes
    peer: tuple[str, int]  # client (host, port): equal ports mean one kept-alive connection

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


# ----------------------------------------------------------------------------- server


class FakeUpstream:
    """Loopback fake of OpenAI, Anthropic and Vault KV v2; see the module docstring."""

    hang_seconds: float = 30.0

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self.vault: dict[str, dict[str, Any]] = {}  # "mount/path" -> the secret's data
        self.vault_token = "test-vault-token"
        self.vault_redirect: str | None = None  # a base URL: KV reads answer 307 to the same path there
        self.vault_delay = 0.0  # seconds before each KV read is answered
        self.stream_interval = 0.05  # seconds between the frames of the default streams
        self.on_request: Callable[[Recorded], None] | None = None  # called as each request arrives
        # Both cleared when a stream starts, so they describe the latest stream. "Aborted" is noticed when a
        # write fails or while pausing (interval > 0, hang_after); with interval 0 the kernel may
        # swallow every frame before the client's close shows, and the stream counts as completed.
        self.stream_aborted = threading.Event()  # the client went away before the stream script finished
        self.stream_completed = threading.Event()  # the stream was sent to its terminating chunk
        self._queue: deque[Reply] = deque()
        self._marked: dict[bytes, Reply] = {}
        self._lock = threading.Lock()
        self._replying = 0
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeUpstream:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(_POLL,), daemon=True,
                                        name="fake-upstream")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging/paced streams and cut idle keep-alive connections; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.cut_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        httpd.join_handlers(timeout=2)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reply(self, *replies: Reply) -> None:
        """Queue scripted replies for the next POST requests (any path), first in first out."""
        with self._lock:
            self._queue.extend(replies)

    def reply_when(self, marker: str, reply: Reply) -> None:
        """Reply so to the next POST whose body holds `marker` (before the queue): for calls made at the
        same time, whose requests arrive in any order."""
        with self._lock:
            self._marked[marker.encode()] = reply

    def reset(self) -> None:
        """Forget recorded requests, queued replies, vault contents and stream events."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._marked.clear()
        self.vault.clear()
        self.vault_token = "test-vault-token"
        self.vault_redirect = None
        self.vault_delay = 0.0
        self.stream_aborted.clear()
        self.stream_completed.clear()

    @property
    def replying(self) -> int:
        """Replies being written (or held back) right now: 0 once every client has its answer or left."""
        with self._lock:
            return self._replying

    @property
    def connections(self) -> int:
        """Client connections open now (busy, or kept alive for their next request)."""
        httpd = self._httpd
        return len(httpd._conns) if httpd is not None else 0

    def _replies(self, step: int) -> None:
        with self._lock:
            self._replying += step

    def _record(self, rec: Recorded) -> Reply | None:
        if self.on_request is not None:
            self.on_request(rec)
        with self._lock:
            self.requests.append(rec)
            if rec.method != "POST":
                return None
            marker = next((m for m in self._marked if m in rec.body), None)
            if marker is not None:
                return self._marked.pop(marker)
            return self._queue.popleft() if self._queue else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: calls made many at once are not kept waiting for a SYN retry
    block_on_close = False  # we join our own handler threads, with a timeout, in stop()

    def __init__(self, address: tuple[str, int], handler: type[_Handler], fake: FakeUpstream) -> None:
        self.fake = fake
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns[conn] = threading.current_thread()
            else:
                self._conns.pop(conn, None)

    def cut_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:  # wakes handler threads blocked reading the next keep-alive request
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._conns_lock:
            threads = list(self._conns.values())
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client disconnects (and anything while stopping) are normal here: stay quiet.
        if self.fake._stopping.is_set() or isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid a 40 ms delayed-ACK stall each
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: no access log, no "code 400" noise on stderr

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_POST

    # --- dispatch

    @property
    def fake(self) -> FakeUpstream:
        return self.server.fake

    def _dispatch(self) -> None:
        body = self._read_body()
        rec = Recorded(self.command, self.path, Headers(list(self.headers.items())), body,
                       (str(self.client_address[0]), int(self.client_address[1])))
        scripted = self.fake._record(rec)
        self.fake._replies(+1)
        try:
            self._send(scripted if scripted is not None else self._default(rec))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        finally:
            self.fake._replies(-1)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _default(self, rec: Recorded) -> Reply:
        path = rec.path.split("?", 1)[0].rstrip("/")
        try:
            req = rec.json() if rec.body else {}
        except ValueError:
            req = {}
        req = req if isinstance(req, dict) else {}
        model = req.get("model") or "fake-model"
        if rec.method == "POST" and path.endswith("/chat/completions"):
            if req.get("stream"):
                usage = bool((req.get("stream_options") or {}).get("include_usage"))
                pieces = ["Hello", " from the fake", " provider."]
                return sse_reply(openai_stream_frames(pieces, model, include_usage=usage), interval=self.fake.stream_interval)
            return json_reply(_chat_completion(model), headers={"x-request-id": f"req_{uuid.uuid4().hex}"})
        if rec.method == "POST" and path.endswith("/responses"):
            headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
            if req.get("stream"):
                pieces = ["Hello", " from the fake", " provider."]
                return sse_reply(responses_stream_frames(pieces, model, request=req), interval=self.fake.stream_interval, headers=headers)
            return json_reply(responses_object(model, request=req), headers=headers)
        if rec.method == "POST" and path.endswith("/messages/count_tokens"):
            return json_reply({"input_tokens": max(1, len(rec.body) // 4)})
        if rec.method == "POST" and path.endswith("/messages"):
            headers = {"request-id": f"req_fake{uuid.uuid4().hex[:20]}"}
            if req.get("stream"):
                frames = anthropic_stream_frames(["Hello", " from the fake", " provider."], model)
                return sse_reply(frames, interval=self.fake.stream_interval, headers=headers)
            return json_reply(_anthropic_message(model), headers=headers)
        if rec.method == "GET" and path.startswith("/v1/") and "/data/" in path:
            return self._vault_read(rec, path)
        return json_reply({"error": {"message": f"fake upstream: no route for {rec.method} {path}",
                                     "type": "invalid_request_error", "param": None, "code": "not_found"}},
                          status=404)

    def _vault_read(self, rec: Recorded, path: str) -> Reply:
        # KV v2 read: GET /v1/:mount/data/:path  https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2
        if self.fake.vault_delay:
            time.sleep(self.fake.vault_delay)
        if self.fake.vault_redirect:
            return json_reply({}, status=307, headers={"Location": self.fake.vault_redirect + path})
        if rec.headers.get("X-Vault-Token") != self.fake.vault_token:
            return json_reply({"errors": ["permission denied"]}, status=403)
        mount, _, secret_path = path[len("/v1/"):].partition("/data/")
        data = self.fake.vault.get(f"{mount}/{secret_path}")
        if data is None:
            return json_reply({"errors": []}, status=404)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        return json_reply({
            "request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": {"data": dict(data), "metadata": {"created_time": created, "custom_metadata": None,
                                                      "deletion_time": "", "destroyed": False, "version": 1}},
            "wrap_info": None, "warnings": None, "auth": None, "mount_type": "kv",
        })

    # --- sending

    def _head(self, status: int, defaults: dict[str, str], extra: Mapping[str, str]) -> None:
        merged = {k: v for k, v in defaults.items() if k.lower() not in {e.lower() for e in extra}}
        merged.update(extra)
        self.send_response(status)
        for k, v in merged.items():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, reply: Reply) -> None:
        if hasattr(reply, "play"):
            reply.play(self)
            return
        if isinstance(reply, SseReply):
            self._stream(reply)
            return
        if isinstance(reply, JsonReply):
            if reply.delay and self._pause(reply.delay) != "ok":
                self.close_connection = True
                return
            data, ctype, extra = json.dumps(reply.body).encode(), "application/json", reply.headers
        else:
            data, ctype, extra = reply.data, reply.content_type, reply.headers
        status = reply.status
        self._head(status, {"Content-Type": ctype, "Content-Length": str(len(data))}, extra)
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _stream(self, reply: SseReply) -> None:
        fake = self.fake
        fake.stream_aborted.clear()
        fake.stream_completed.clear()
        self._head(reply.status, {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                                  "Transfer-Encoding": "chunked"}, reply.headers)
        try:
            for n, frame in enumerate(reply.frames):
                if n == reply.hang_after:
                    self._end_abruptly(self._pause(self.hang_seconds))
                    return
                if n == reply.drop_after:
                    self._end_abruptly("dropped")
                    return
                if n and reply.interval:
                    outcome = self._pause(reply.interval)
                    if outcome != "ok":
                        self._end_abruptly(outcome)
                        return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            n = len(reply.frames)
            if reply.hang_after is not None and reply.hang_after >= n:
                self._end_abruptly(self._pause(self.hang_seconds))
                return
            if reply.drop_after is not None and reply.drop_after >= n:
                self._end_abruptly("dropped")
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self._end_abruptly("gone")
            return
        fake.stream_completed.set()

    @property
    def hang_seconds(self) -> float:
        return self.fake.hang_seconds

    def _end_abruptly(self, outcome: str) -> None:
        """Close without the terminating chunk; record a client that left first."""
        if outcome == "gone":
            self.fake.stream_aborted.set()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _pause(self, seconds: float) -> str:
        """Wait up to ``seconds``: "ok" when they passed, "stopped" on stop(), "gone" if the client closed."""
        deadline = time.monotonic() + seconds
        watch = True
        while (remaining := deadline - time.monotonic()) > 0:
            if self.fake._stopping.is_set():
                return "stopped"
            if not watch:  # the client sent bytes (a pipelined request?): just wait for time or stop()
                self.fake._stopping.wait(min(remaining, _POLL))
                continue
            try:
                readable, _, _ = select.select([self.connection], [], [], min(remaining, _POLL))
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return "gone"
            except OSError:
                return "gone"
            watch = not readable
        return "stopped" if self.fake._stopping.is_set() else "ok"


def _chat_completion(model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{uuid.uuid4().hex[:20]}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": HELLO, "refusal": None},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }


def _anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": f"msg_fake{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": HELLO}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }
