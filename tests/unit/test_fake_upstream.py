"""The loopback fake upstream itself: real HTTP through requests, sseclient and the provider SDKs."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import sseclient

from tests.fakes.upstream import (
    HELLO,
    FakeUpstream,
    anthropic_stream_frames,
    connection_refused_url,
    json_reply,
    openai_stream_frames,
    raw_reply,
    sse_file_frames,
    sse_reply,
)

pytest_plugins = ["tests.fakes.fixtures"]

CHAT = "/v1/chat/completions"


def events(resp: requests.Response) -> list[sseclient.Event]:
    return list(sseclient.SSEClient(resp).events())


def test_it_answers_a_chat_completion_by_default(fake_upstream: FakeUpstream) -> None:
    resp = requests.post(fake_upstream.url + CHAT, json={"model": "gpt-4o", "messages": []}, timeout=5)

    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert body["id"].startswith("chatcmpl-fake")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": HELLO, "refusal": None},
                                "finish_reason": "stop", "logprobs": None}]
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}


def test_it_streams_chat_chunks_by_default(fake_upstream: FakeUpstream) -> None:
    with requests.post(fake_upstream.url + CHAT, json={"model": "m", "stream": True}, stream=True, timeout=5) as resp:
        got = events(resp)

    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert got[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in got[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == HELLO
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert fake_upstream.stream_completed.wait(2) and not fake_upstream.stream_aborted.is_set()


def test_it_adds_the_usage_chunk_when_include_usage(fake_upstream: FakeUpstream) -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    with requests.post(fake_upstream.url + CHAT, json=body, stream=True, timeout=5) as resp:
        chunks = [json.loads(e.data) for e in events(resp)[:-1]]

    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    assert all(c["usage"] is None for c in chunks[:-1])


def test_it_delivers_frames_paced_in_real_time(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(sse_reply(openai_stream_frames(["a", "b"]), interval=0.2))  # 5 frames: 0.8 s
    start = time.monotonic()
    with requests.post(fake_upstream.url + CHAT, json={}, stream=True, timeout=5) as resp:
        arrivals = [time.monotonic() - start for _ in sseclient.SSEClient(resp).events()]

    assert len(arrivals) == 5
    assert arrivals[-1] >= 0.75
    assert arrivals[-1] - arrivals[0] >= 0.6  # the first frame did not wait for the last one
    assert all(b - a > 0.1 for a, b in zip(arrivals, arrivals[1:], strict=False))


def test_it_uses_queued_replies_in_order_then_the_default(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(json_reply({"n": 1}, status=201, headers={"retry-after": "7"}),
                        raw_reply(b"{not json", status=502))
    url = fake_upstream.url + CHAT

    first, second, third = (requests.post(url, json={}, timeout=5) for _ in range(3))

    assert (first.status_code, first.json(), first.headers["Retry-After"]) == (201, {"n": 1}, "7")
    assert (second.status_code, second.content) == (502, b"{not json")
    assert third.json()["object"] == "chat.completion"


def test_queued_replies_serve_any_post_path_but_not_gets(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(json_reply("queued"))

    assert requests.get(fake_upstream.url + "/v1/models", timeout=5).status_code == 404
    assert requests.post(fake_upstream.url + "/anything", timeout=5).json() == "queued"


def test_it_records_each_request(fake_upstream: FakeUpstream) -> None:
    requests.post(fake_upstream.url + CHAT + "?x=1", json={"model": "m"},
                  headers={"Authorization": "Bearer sk-fake"}, timeout=5)
    requests.get(fake_upstream.url + "/nowhere", timeout=5)

    first, second = fake_upstream.requests
    assert (first.method, first.path) == ("POST", CHAT + "?x=1")
    assert first.headers["authorization"] == "Bearer sk-fake"
    assert first.headers.get("CONTENT-TYPE") == "application/json"
    assert first.json() == {"model": "m"}
    assert (second.method, second.body) == ("GET", b"")


def test_a_json_delay_holds_back_the_status_line(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(json_reply({"ok": True}, delay=0.3), json_reply({"late": True}, delay=2))
    start = time.monotonic()
    assert requests.post(fake_upstream.url + CHAT, timeout=5).json() == {"ok": True}
    assert time.monotonic() - start >= 0.3

    with pytest.raises(requests.ReadTimeout):
        requests.post(fake_upstream.url + CHAT, timeout=(1, 0.3))


def test_hang_after_makes_the_client_time_out_mid_stream(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(sse_reply(openai_stream_frames(["a", "b"]), hang_after=2))
    seen = []

    # mid-body, requests wraps urllib3's ReadTimeoutError in ConnectionError (not requests.ReadTimeout)
    with (
        pytest.raises(requests.ConnectionError, match="Read timed out"),
        requests.post(fake_upstream.url + CHAT, stream=True, timeout=(1, 0.5)) as resp,
    ):
        seen.extend(sseclient.SSEClient(resp).events())

    assert len(seen) == 2
    assert fake_upstream.stream_aborted.wait(2)  # the client left while the fake was hanging
    assert not fake_upstream.stream_completed.is_set()


def test_drop_after_cuts_the_stream_without_a_final_chunk(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(sse_reply(openai_stream_frames(["a", "b", "c"]), drop_after=3))
    seen = []

    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.post(fake_upstream.url + CHAT, stream=True, timeout=5) as resp,
    ):
        seen.extend(sseclient.SSEClient(resp).events())

    assert len(seen) == 3
    assert not fake_upstream.stream_completed.is_set()


def test_a_client_closing_mid_stream_sets_stream_aborted(fake_upstream: FakeUpstream, capfd) -> None:
    fake_upstream.reply(sse_reply(openai_stream_frames(["x"] * 50), interval=0.05))

    with requests.post(fake_upstream.url + CHAT, stream=True, timeout=5) as resp:
        stream = sseclient.SSEClient(resp).events()
        next(stream), next(stream)

    assert fake_upstream.stream_aborted.wait(2)
    assert not fake_upstream.stream_completed.is_set()
    fake_upstream.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_stop_is_prompt_even_with_a_hanging_stream() -> None:
    fake = FakeUpstream().start()
    fake.reply(sse_reply(["data: {}\n\n"], hang_after=1))
    resp = requests.post(fake.url + CHAT, stream=True, timeout=5)
    errors: list[Exception] = []

    def read() -> None:
        try:
            list(resp.iter_content(None))
        except requests.RequestException as exc:  # the cut stream ends the read, as it should
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    idle = requests.Session()
    idle.get(fake.url + "/idle", timeout=5)  # leaves a kept-alive connection the server must cut
    time.sleep(0.1)

    start = time.monotonic()
    fake.stop()

    assert time.monotonic() - start < 1
    reader.join(2)
    assert not reader.is_alive() and errors
    idle.close()


def test_vault_kv2_read_returns_the_secret(fake_upstream: FakeUpstream) -> None:
    fake_upstream.vault["secret/mcpd/openai"] = {"api_key": "sk-fake"}

    resp = requests.get(fake_upstream.url + "/v1/secret/data/mcpd/openai",
                        headers={"X-Vault-Token": "test-vault-token"}, timeout=5)

    assert resp.status_code == 200
    body = resp.json()
    assert body["data"]["data"] == {"api_key": "sk-fake"}
    assert body["data"]["metadata"]["version"] == 1
    assert body["data"]["metadata"]["destroyed"] is False
    assert {"request_id", "lease_id", "renewable", "lease_duration", "wrap_info", "warnings", "auth"} <= set(body)


@pytest.mark.parametrize(("token", "path", "status", "body"), [
    (None, "secret/data/mcpd/openai", 403, {"errors": ["permission denied"]}),
    ("wrong", "secret/data/mcpd/openai", 403, {"errors": ["permission denied"]}),
    ("test-vault-token", "secret/data/missing", 404, {"errors": []}),
])
def test_vault_refuses_bad_tokens_and_missing_paths(fake_upstream: FakeUpstream, token, path, status, body) -> None:
    fake_upstream.vault["secret/mcpd/openai"] = {"api_key": "sk-fake"}
    headers = {"X-Vault-Token": token} if token else {}

    resp = requests.get(f"{fake_upstream.url}/v1/{path}", headers=headers, timeout=5)

    assert (resp.status_code, resp.json()) == (status, body)


def test_one_session_reuses_one_connection(fake_upstream: FakeUpstream) -> None:
    with requests.Session() as session:
        for i in range(20):
            if i == 10:  # a finished chunked stream must leave the connection reusable too
                with session.post(fake_upstream.url + CHAT, json={"stream": True}, stream=True, timeout=5) as r:
                    assert events(r)[-1].data == "[DONE]"
            else:
                assert session.post(fake_upstream.url + CHAT, json={}, timeout=5).status_code == 200

    assert len(fake_upstream.requests) == 20
    assert len({r.peer for r in fake_upstream.requests}) == 1


def test_connection_refused_url_refuses() -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(connection_refused_url(), timeout=2)


def test_sse_file_frames_splits_on_blank_lines(tmp_path) -> None:
    recorded = tmp_path / "x.sse"
    recorded.write_bytes(b"event: ping\r\ndata: {}\r\n\r\n\r\ndata: [DONE]\n\n")

    assert sse_file_frames(recorded) == ["event: ping\ndata: {}\n\n", "data: [DONE]\n\n"]


def test_it_answers_anthropic_messages(fake_upstream: FakeUpstream) -> None:
    resp = requests.post(fake_upstream.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 5}, timeout=5)

    assert resp.headers["request-id"].startswith("req_")
    body = resp.json()
    assert (body["type"], body["model"], body["stop_reason"]) == ("message", "claude-x", "end_turn")
    assert body["content"] == [{"type": "text", "text": HELLO}]
    assert body["usage"] == {"input_tokens": 12, "output_tokens": 7}


def test_it_streams_anthropic_events(fake_upstream: FakeUpstream) -> None:
    body = {"model": "claude-x", "max_tokens": 5, "stream": True}
    with requests.post(fake_upstream.url + "/v1/messages", json=body, stream=True, timeout=5) as resp:
        got = events(resp)

    names = [e.event for e in got]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert all(json.loads(e.data)["type"] == e.event for e in got)
    deltas = [json.loads(e.data)["delta"]["text"] for e in got if e.event == "content_block_delta"]
    assert "".join(deltas) == HELLO


def test_the_openai_sdk_accepts_the_replies(fake_upstream: FakeUpstream) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=fake_upstream.url + "/v1", api_key="sk-fake", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]

    completion = client.chat.completions.create(model="gpt-4o", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)

    assert completion.choices[0].message.content == HELLO
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    assert chunks[-1].usage.total_tokens == 15


def test_the_anthropic_sdk_accepts_the_replies(fake_upstream: FakeUpstream) -> None:
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=fake_upstream.url, api_key="sk-ant-fake", max_retries=0)
    fake_upstream.reply(sse_reply(anthropic_stream_frames(["Hi", "!"])))
    messages = [{"role": "user", "content": "hi"}]

    with client.messages.stream(model="claude-x", max_tokens=5, messages=messages) as stream:
        final = stream.get_final_message()
    message = client.messages.create(model="claude-x", max_tokens=5, messages=messages)

    assert (final.content[0].text, final.stop_reason, final.usage.output_tokens) == ("Hi!", "end_turn", 7)
    assert message.content[0].text == HELLO
