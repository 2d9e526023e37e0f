"""Provider faults against `make run`'s server: each inbound API and route, what the provider does wrong,
and what the client and the audit log must see then (CONTRACT.md).

A `Route` is an inbound API on an Llm of a provider: its request body, the provider's wire format, and
how the client's API shapes an error. A `Fault` makes the fake's reply for a route's format (a stream or
a whole answer) and names its outcome: the status and error (`type`, `code`) before any byte of the
answer, one error event after a stream began, or a good answer ("ok").
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import requests

from tests.e2e.conftest import Server
from tests.fakes.faults import (
    HTML_ERROR_PAGE,
    NOT_JSON,
    SSE,
    hang_reply,
    huge_reply,
    paced_reply,
    reset_reply,
    stall_reply,
    trickle_reply,
)
from tests.fakes.upstream import (
    FakeUpstream,
    anthropic_stream_frames,
    json_reply,
    openai_stream_frames,
    raw_reply,
    responses_stream_frames,
    sse_reply,
)

KEY = "sk-f4ults-9Qz7Xw2Lk5Vb8Nm3"  # no word of 8 letters in it: a provider's text would lose it (scrubbed)
# The server's settings: short timeouts, so that a silence costs a fraction of a second; a small cap,
# so that an oversized body costs little (the fake's bodies are 60 MiB, 15 times over).
READ_TIMEOUT = 0.6  # a whole reply of the fake must arrive within it, on a loaded 2-core machine too
MAX_BODY = 4 * 1024 * 1024
SERVER_ENV = {"WEB_CONCURRENCY": "1", "MCPD_UPSTREAM_READ_TIMEOUT": str(READ_TIMEOUT),
              "MCPD_UPSTREAM_CONNECT_TIMEOUT": "1", "MCPD_UPSTREAM_MAX_BODY_BYTES": str(MAX_BODY),
              "MCPD_ACCESS_LOG": "/dev/null"}

SET_UP = """
from django.contrib.auth.models import User
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
from secrets_app.models import Secret
secret = Secret(name="k", backend="db"); secret.set_value({key!r}); secret.save()
user = User.objects.create_user("faults")
for name, provider, model in [("gpt", "openai", "gpt-4o-mini"), ("claude", "anthropic", "claude-sonnet-4-5"),
                              ("qwen", "vllm", "qwen3")]:
    for suffix, base_url in [("", {up!r}), ("-down", {down!r})]:
        llm = Llm.objects.create(name=name + suffix, provider=provider, model=model, base_url=base_url,
                                 api_key_secret=secret, default_max_tokens=256)
        grant_run(user, llm)
print(ApiToken.objects.issue(user)[1])
"""


def set_up(server: Server, fake: FakeUpstream, down_url: str) -> str:
    """The Llms gpt (openai), claude (anthropic) and qwen (vllm) on the fake, each with a twin `-down`
    whose provider refuses connections, and a user who may run them all; their token."""
    script = SET_UP.format(key=KEY, up=f"{fake.url}/v1", down=down_url)
    return server.manage("shell", "-c", script).strip().splitlines()[-1]


# ----------------------------------------------------------------------------- the provider's formats

CHAT_COMPLETION = {"id": "chatcmpl-faults", "object": "chat.completion", "created": 1700000000, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
MESSAGE = {"id": "msg_faults", "type": "message", "role": "assistant", "model": "m",
           "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 9, "output_tokens": 2}}

RESPONSE = {"id": "resp_faults", "object": "response", "created_at": 1700000000, "status": "completed",
            "model": "m", "output": [{"id": "msg_f", "type": "message", "status": "completed", "role": "assistant",
                                      "content": [{"type": "output_text", "annotations": [], "text": "Hello there"}]}],
            "usage": {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}}


@dataclass(frozen=True)
class Format:
    """What a provider speaks: its stream's frames and its whole answer, both saying "Hello there"."""

    name: str
    frames: Callable[[], list[str]]
    answer: Callable[[], dict[str, Any]]


FORMATS = {
    "chat": Format("chat", lambda: openai_stream_frames(["Hello", " there"], include_usage=True),
                   lambda: CHAT_COMPLETION),
    "anthropic": Format("anthropic", lambda: anthropic_stream_frames(["Hello", " there"]), lambda: MESSAGE),
    "responses": Format("responses", lambda: responses_stream_frames(["Hello", " there"]), lambda: RESPONSE),
}


# ----------------------------------------------------------------------------- the inbound routes


@dataclass(frozen=True)
class Route:
    """An inbound API on one Llm: `api` is the client's ("chat", "messages", "responses")."""

    id: str
    api: str
    path: str
    llm: str
    format: str  # what the Llm's provider speaks
    audit_api: str

    def body(self, stream: bool, llm: str | None = None, text: str = "Hi") -> dict[str, Any]:
        """The request (`text` from the user: it reaches the provider on every route)."""
        name = llm or self.llm
        if self.api == "messages":
            body: dict[str, Any] = {"model": name, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
        elif self.api == "responses":
            body = {"model": name, "input": text}
        else:
            body = {"messages": [{"role": "user", "content": text}]}
            if not self.path.startswith("/api/"):
                body["model"] = name
        return {**body, "stream": stream}

    def url(self, server: Server, llm: str | None = None) -> str:
        return server.url + self.path.format(llm=llm or self.llm)


ROUTES = [
    Route("chat-to-openai", "chat", "/v1/chat/completions", "gpt", "chat", "chat_completions"),
    Route("infer-to-openai", "chat", "/api/v1/llms/{llm}/infer", "gpt", "chat", "chat_completions"),
    Route("chat-to-anthropic", "chat", "/v1/chat/completions", "claude", "anthropic", "chat_completions"),
    Route("messages-to-anthropic", "messages", "/v1/messages", "claude", "anthropic", "messages"),
    Route("messages-to-openai", "messages", "/v1/messages", "gpt", "chat", "messages"),
    Route("responses-to-openai", "responses", "/v1/responses", "gpt", "responses", "responses"),
    Route("responses-to-anthropic", "responses", "/v1/responses", "claude", "anthropic", "responses"),
    Route("responses-to-vllm", "responses", "/v1/responses", "qwen", "chat", "responses"),
]


# ----------------------------------------------------------------------------- the faults


@dataclass(frozen=True)
class Outcome:
    """What the client gets: `status` before any byte (with the error's `type`, `code`), or, when
    `mid_stream`, a 200 stream that ends with one error event of that type and code; "ok" when both are
    None. `code` None: any (the Anthropic shape has none)."""

    status: int = 200
    type: str | None = None
    code: str | None = None
    mid_stream: bool = False

    @property
    def ok(self) -> bool:
        return self.type is None


OK = Outcome()
UNREACHABLE = Outcome(502, "upstream_error", "upstream_unreachable")
BAD_RESPONSE = Outcome(502, "upstream_error", "upstream_bad_response")
TIMEOUT = Outcome(504, "timeout_error", "upstream_timeout")
SERVER_ERROR = Outcome(502, "upstream_error", "upstream_server_error")


def _mid(outcome: Outcome) -> Outcome:
    return Outcome(200, outcome.type, outcome.code, mid_stream=True)


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Fault:
    """A provider's misbehaviour: `reply(format, stream)` is the fake's reply (None: the Llm's provider is
    down, the route's `-down` twin is called); `outcome(stream)` what the client must see."""

    id: str
    reply: Callable[[Format, bool], Any]
    outcome: Callable[[bool], Outcome]
    slow: bool = False  # waits for a read timeout


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _reset(fmt: Format, stream: bool):
    if stream:  # two whole frames, half of the third, then RST
        frames = fmt.frames()
        return reset_reply([*frames[:2], _half(frames[2].encode())], content_type=SSE, chunked=True)
    body = _dumps(fmt.answer())
    return reset_reply([_half(body)], length=len(body))


def _stall(fmt: Format, stream: bool):
    if stream:
        return sse_reply(fmt.frames(), hang_after=2)
    body = _dumps(fmt.answer())
    return stall_reply([_half(body)], length=len(body))


def _trickle(fmt: Format, stream: bool):
    # One byte per write and no pause: a whole reply must arrive within READ_TIMEOUT, which a loaded
    # machine's scheduling of hundreds of paced writes could exceed; the one-byte reads are the fault.
    if stream:
        return trickle_reply(fmt.frames(), pause=0, content_type=SSE, chunked=True)
    return trickle_reply([_dumps(fmt.answer())], pause=0)


def _slow_but_steady(fmt: Format, stream: bool):
    """Never silent for a read timeout, but longer than one in all: a stream lives, a whole reply is late."""
    if stream:
        return sse_reply(fmt.frames(), interval=READ_TIMEOUT / 4)
    body = _dumps(fmt.answer())
    return paced_reply([body[i * len(body) // 6:(i + 1) * len(body) // 6] for i in range(6)],
                       interval=READ_TIMEOUT / 4)


def _huge(fmt: Format, stream: bool, **how):
    if stream:  # one whole event, then one that never ends
        first = fmt.frames()[0].encode()
        return huge_reply(prefix=first + b'data: {"type":"x","x":"', content_type=SSE,
                          **{"chunked": True, **how})
    return huge_reply(**how)


def _wrong_type(fmt: Format, stream: bool):
    if stream:  # a JSON answer to a streaming request
        return json_reply(fmt.answer())
    return sse_reply(fmt.frames())  # an event stream to a request for one answer


FAULTS = [
    Fault("refused", lambda fmt, stream: None, lambda stream: UNREACHABLE),
    Fault("reset-before-headers", lambda fmt, stream: reset_reply(), lambda stream: UNREACHABLE),
    Fault("hang-before-headers", lambda fmt, stream: hang_reply(), lambda stream: TIMEOUT, slow=True),
    Fault("reset-mid-body", _reset,
          lambda stream: _mid(Outcome(502, "upstream_error", "upstream_stream_incomplete")) if stream else BAD_RESPONSE),
    Fault("stall-mid-body", _stall, lambda stream: _mid(TIMEOUT) if stream else TIMEOUT, slow=True),
    Fault("trickle", _trickle, lambda stream: OK),
    Fault("slow-but-steady", _slow_but_steady, lambda stream: OK if stream else TIMEOUT, slow=True),
    Fault("not-json", lambda fmt, stream: raw_reply(NOT_JSON), lambda stream: BAD_RESPONSE),
    Fault("html-200", lambda fmt, stream: raw_reply(HTML_ERROR_PAGE, content_type="text/html"),
          lambda stream: BAD_RESPONSE),
    Fault("html-503", lambda fmt, stream: raw_reply(HTML_ERROR_PAGE, status=503, content_type="text/html"),
          lambda stream: SERVER_ERROR),
    Fault("wrong-content-type", _wrong_type, lambda stream: BAD_RESPONSE),
    Fault("oversized", _huge, lambda stream: _mid(BAD_RESPONSE) if stream else BAD_RESPONSE),
    Fault("oversized-chunked", lambda fmt, stream: _huge(fmt, stream, chunked=True),
          lambda stream: _mid(BAD_RESPONSE) if stream else BAD_RESPONSE),
    Fault("oversized-gzip", lambda fmt, stream: _huge(fmt, stream, gzip=True),
          lambda stream: _mid(BAD_RESPONSE) if stream else BAD_RESPONSE),
]


# ----------------------------------------------------------------------------- calling and checking


@dataclass
class Call:
    """One call's answer as the client saw it."""

    request_id: str
    status: int
    content_type: str
    body: bytes


def call(server: Server, token: str, fake: FakeUpstream, route: Route, fault: Fault, stream: bool, *,
         session: requests.Session | None = None) -> Call:
    """Make the fault the fake's reply to this call alone (its request id is in the prompt), send the
    route's request (to the `-down` twin for a provider that is down); the whole answer."""
    llm = f"{route.llm}-down" if fault.id == "refused" else route.llm
    request_id = f"faults-{uuid.uuid4().hex}"
    reply = fault.reply(FORMATS[route.format], stream)
    if reply is not None:
        fake.reply_when(request_id, reply)
    response = (session or requests).post(route.url(server, llm), json=route.body(stream, llm, f"Hi {request_id}"),
                                          timeout=30,
                                          headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id})
    return Call(request_id, response.status_code, response.headers.get("Content-Type", ""), response.content)


def check(route: Route, outcome: Outcome, stream: bool, answer: Call) -> None:
    """The answer is what the contract says for this outcome, in the route's API."""
    assert answer.status == outcome.status, (answer.status, answer.body[:500])
    if not outcome.ok and not outcome.mid_stream:
        assert answer.content_type.startswith("application/json"), answer.content_type
        _check_error(route, outcome, json.loads(answer.body))
        return
    if not stream:
        assert answer.content_type.startswith("application/json")
        _check_answer(route, json.loads(answer.body))
        return
    assert answer.content_type.startswith("text/event-stream"), answer.content_type
    events = sse_events(answer.body)
    if outcome.ok:
        _check_stream(route, events)
    else:
        _check_stream_error(route, outcome, events)


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, JSON data) of each event of a stream; a frame that does not parse fails the test."""
    found = []
    for frame in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
            elif line and not line.startswith(b":"):
                raise AssertionError(f"not an SSE line: {line[:200]!r}")
        if data:
            joined = b"\n".join(data)
            found.append((name, joined.decode() if joined == b"[DONE]" else json.loads(joined)))
    return found


def _check_error(route: Route, outcome: Outcome, body: dict) -> None:
    if route.api == "messages":
        expected = {502: "api_error", 504: "timeout_error"}[outcome.status]
        assert body["type"] == "error" and body["error"]["type"] == expected, body
        return
    assert set(body) == {"error"}, body
    assert (body["error"]["type"], body["error"]["code"]) == (outcome.type, outcome.code), body


def _check_answer(route: Route, body: dict) -> None:
    if route.api == "messages":
        assert body["type"] == "message" and body["content"][-1]["text"] == "Hello there", body
    elif route.api == "responses":
        assert body["object"] == "response" and body["status"] == "completed", body
        assert body["output"][-1]["content"][0]["text"] == "Hello there"
    else:
        assert body["choices"][0]["message"]["content"] == "Hello there", body


def _text(route: Route, events: list[tuple[str, Any]]) -> str:
    if route.api == "messages":
        return "".join(e["delta"].get("text", "") for n, e in events if n == "content_block_delta")
    if route.api == "responses":
        return "".join(e["delta"] for n, e in events if n == "response.output_text.delta")
    return "".join((c["choices"][0]["delta"].get("content") or "") for _, c in events
                   if isinstance(c, dict) and c.get("choices"))


def _check_stream(route: Route, events: list[tuple[str, Any]]) -> None:
    assert _text(route, events) == "Hello there", events
    if route.api == "messages":
        assert events[-1][0] == "message_stop" and all(n != "error" for n, _ in events)
    elif route.api == "responses":
        assert events[-1][0] == "response.completed" and all(n != "error" for n, _ in events)
    else:
        assert events[-1][1] == "[DONE]" and not any(isinstance(e, dict) and "error" in e for _, e in events)


def _check_stream_error(route: Route, outcome: Outcome, events: list[tuple[str, Any]]) -> None:
    if route.api == "messages":
        errors = [e for n, e in events if n == "error"]
        expected = {502: "api_error", 504: "timeout_error"}[_status_of(outcome)]
        assert events[-1][0] == "error" and len(errors) == 1, events[-3:]
        assert errors[0]["type"] == "error" and errors[0]["error"]["type"] == expected, errors
        assert all(n != "message_stop" for n, _ in events)
    elif route.api == "responses":
        assert [n for n, _ in events[-2:]] == ["error", "response.failed"], events[-3:]
        assert [n for n, _ in events].count("error") == 1
        assert events[-2][1]["code"] == outcome.code, events[-2]
        assert all(n not in ("response.completed", "response.incomplete") for n, _ in events)
        numbers = [e["sequence_number"] for _, e in events]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    else:
        errors = [e for _, e in events if isinstance(e, dict) and "error" in e]
        assert len(errors) == 1 and events[-1][1] is errors[0], events[-3:]
        assert (errors[0]["error"]["type"], errors[0]["error"]["code"]) == (outcome.type, outcome.code), errors
        assert all(e != "[DONE]" for _, e in events)


def _status_of(outcome: Outcome) -> int:
    return {"timeout_error": 504}.get(outcome.type or "", 502)


# ----------------------------------------------------------------------------- the audit log


def audit_rows(server: Server, request_id: str | None = None) -> list[tuple]:
    """(request_id, api, streaming, status, outcome, error) of the inference rows (of one request)."""
    query = ("SELECT request_id, api, streaming, status, outcome, error FROM audit_auditevent "
             "WHERE kind = 'llm_inference_call'")
    params: tuple = ()
    if request_id is not None:
        query, params = query + " AND request_id = ?", (request_id,)
    with closing(sqlite3.connect(f"file:{server.data_dir / 'mcpd.sqlite3'}?mode=ro", uri=True, timeout=10)) as db:
        return db.execute(query + " ORDER BY id", params).fetchall()


def wait_for_row(server: Server, request_id: str, timeout: float = 10.0) -> list[tuple]:
    """The rows of the request, once there is one (the worker writes them after the answer has gone)."""
    deadline = time.monotonic() + timeout
    while not (found := audit_rows(server, request_id)):
        assert time.monotonic() < deadline, f"no audit row for {request_id}"
        time.sleep(0.05)
    return found


def check_row(route: Route, outcome: Outcome, stream: bool, row: tuple) -> None:
    """The call's one row: its API, streaming flag, the status sent and the outcome."""
    _, api, streaming, status, result, error = row
    assert (api, bool(streaming), status) == (route.audit_api, stream, outcome.status), row
    if outcome.ok:
        assert result == "ok", row
    else:
        assert result == "error" and error, row
        if outcome.mid_stream:
            assert error.startswith(f"after the stream began: {_status_of(outcome)}"), row
