"""The fake's faults (tests/fakes/faults.py) as a client meets them: real sockets, requests and urllib3."""

from __future__ import annotations

import socket
import time
import tracemalloc

import pytest
import requests

from tests.fakes.faults import SSE, hang_reply, huge_reply, reset_reply, trickle_reply
from tests.fakes.upstream import FakeUpstream, json_reply, openai_stream_frames
from tests.waiting import wait_for

pytest_plugins = ["tests.fakes.fixtures"]

CHAT = "/v1/chat/completions"


def test_a_reset_mid_stream_is_a_connection_reset_not_an_end(fake_upstream: FakeUpstream) -> None:
    frames = openai_stream_frames(["a", "b"])
    fake_upstream.reply(reset_reply([*frames[:2], frames[2][:10]], content_type=SSE, chunked=True))
    with requests.post(fake_upstream.url + CHAT, json={}, stream=True, timeout=5) as resp:
        raw = resp.raw
        got = raw.read1(65536)
        assert got.startswith(b"data: ")
        with pytest.raises(Exception) as info:  # urllib3's ProtocolError wrapping the reset
            while raw.read1(65536):
                pass
    assert "reset" in repr(info.value).lower()


def test_a_reset_mid_body_cuts_a_declared_length(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(reset_reply([b'{"choices": ['], length=100))
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="reset"):
        requests.post(fake_upstream.url + CHAT, json={}, timeout=5).content  # noqa: B018


def test_a_reset_before_any_byte(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(reset_reply())
    with pytest.raises(requests.exceptions.ConnectionError, match="reset|aborted"):
        requests.post(fake_upstream.url + CHAT, json={}, timeout=5)


def test_a_hang_sends_nothing_and_ends_when_the_client_leaves(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(hang_reply())
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(fake_upstream.url + CHAT, json={}, timeout=(1, 0.3))
    assert time.monotonic() - started < 2
    wait_for(lambda: fake_upstream.replying == 0, timeout=2)  # it noticed the client leave


def test_a_short_hang_then_closes_without_an_answer(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(hang_reply(0.1))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(fake_upstream.url + CHAT, json={}, timeout=5)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_trickle_arrives_one_byte_at_a_time(fake_upstream: FakeUpstream, chunked: bool) -> None:
    body = b'{"choices": []}'
    fake_upstream.reply(trickle_reply([body], pause=0.01, chunked=chunked))
    with requests.post(fake_upstream.url + CHAT, json={}, stream=True, timeout=5) as resp:
        reads = []
        while data := resp.raw.read1(65536):
            reads.append(data)
    assert b"".join(reads) == body and len(reads) == len(body)


@pytest.mark.parametrize("how", [{}, {"chunked": True}, {"gzip": True}])
def test_a_huge_body_is_generated_as_it_is_written(fake_upstream: FakeUpstream, how: dict) -> None:
    size = 60 * 1024 * 1024
    fake_upstream.reply(huge_reply(size, **how))
    tracemalloc.start()
    try:
        with requests.post(fake_upstream.url + CHAT, json={}, stream=True, timeout=30) as resp:
            assert ("Content-Length" in resp.headers) is not bool(how)
            total = sum(map(len, resp.raw.stream(1024 * 1024, decode_content=True)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 16 * 1024 * 1024  # neither the fake nor the client held the body


def test_replying_counts_replies_in_progress(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply(hang_reply())
    sock = socket.create_connection(fake_upstream.url.removeprefix("http://").split(":"))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    wait_for(lambda: fake_upstream.replying == 1, timeout=2)
    assert fake_upstream.connections == 1
    sock.close()
    wait_for(lambda: fake_upstream.replying == 0 and fake_upstream.connections == 0, timeout=2)


def test_marked_replies_go_to_the_request_that_names_them(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply_when("call-b", reset_reply())
    fake_upstream.reply_when("call-a", json_reply({"for": "a"}))
    fake_upstream.reply(json_reply({"from": "the queue"}))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(fake_upstream.url + CHAT, json={"prompt": "call-b"}, timeout=5)
    assert requests.post(fake_upstream.url + CHAT, json={"prompt": "call-a"}, timeout=5).json() == {"for": "a"}
    assert requests.post(fake_upstream.url + CHAT, json={"prompt": "x"}, timeout=5).json() == {"from": "the queue"}
