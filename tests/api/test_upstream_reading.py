"""How mcpd reads a provider's reply (llms/transport.py): a whole reply up to MCPD_UPSTREAM_MAX_BODY_BYTES and
within the read timeout, decoded as the provider encoded it; a stream whole events at a time, each up to the
same limit. Every fault on every route, through the production server: tests/e2e/test_faults.py.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
import zlib

import pytest

from mcpd.errors import UpstreamError
from tests.api.calls import CHAT, error_of, infer, rows, sse_body
from tests.fakes.faults import SSE, WireReply, huge_reply, paced_reply, reset_reply
from tests.fakes.upstream import anthropic_stream_frames, json_reply, openai_stream_frames

pytestmark = pytest.mark.django_db

MESSAGES = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def claude(make_llm, alice, fake_upstream):
    from llms.permissions import grant_run

    llm = make_llm("claude", provider="anthropic", model="claude-x", base_url=fake_upstream.url + "/v1")
    grant_run(alice, llm)
    return llm


def gzipped(frames: list[str]) -> WireReply:
    """An event stream gzip-encoded, as a provider behind a compressing proxy may send it."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 31)
    pieces = [encoder.compress(f.encode()) + encoder.flush(zlib.Z_SYNC_FLUSH) for f in frames] + [encoder.flush()]
    return WireReply(lambda: pieces, content_type=SSE, headers={"Content-Encoding": "gzip"}, chunked=True)


@pytest.mark.parametrize("how", [{}, {"chunked": True}, {"gzip": True}])
def test_a_reply_over_the_limit_is_a_502_however_it_comes(alice, client_for, upstream_llm, fake_upstream, settings,
                                                          how):
    settings.UPSTREAM_MAX_BODY_BYTES = 1024 * 1024
    fake_upstream.reply(huge_reply(8 * 1024 * 1024, **how))
    response = infer(client_for(alice))
    assert response.status_code == 502 and error_of(response)["code"] == "upstream_bad_response"
    assert "larger than mcpd accepts" in error_of(response)["message"]
    assert [(r.status, r.outcome) for r in rows()] == [(502, "error")]


@pytest.mark.parametrize("how", [{"chunked": True}, {"gzip": True}])
def test_a_reply_over_the_limit_costs_the_limit_not_the_reply(upstream_llm, fake_upstream, settings, how):
    from llms import transport
    from llms.adapters.base import UpstreamRequest

    settings.UPSTREAM_MAX_BODY_BYTES = 1024 * 1024
    reply = huge_reply(32 * 1024 * 1024, **how)
    if how.get("gzip"):
        list(reply.pieces())  # the fake's gzip filler, compressed once, is not what is measured
    fake_upstream.reply(reply)
    upstream = transport.post(UpstreamRequest(url=upstream_llm.base_url + "/chat/completions", headers={}, json={}),
                              stream=False, provider="openai")
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamError, match="larger than mcpd accepts"):
            upstream.body()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        upstream.close()
    assert peak < 1.5 * 1024 * 1024  # the limit and one read (the fake's writing counts too)


def test_a_reply_of_exactly_the_limit_is_read(alice, client_for, upstream_llm, fake_upstream, settings):
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}).encode()
    settings.UPSTREAM_MAX_BODY_BYTES = len(body)
    fake_upstream.reply(WireReply(lambda: [body[:10], body[10:]], chunked=True))
    assert infer(client_for(alice)).status_code == 200


def test_a_whole_reply_gives_its_connection_back_to_the_pool(alice, client_for, upstream_llm, fake_upstream):
    client = client_for(alice)
    for _ in range(3):
        assert infer(client).status_code == 200
    assert len({request.peer for request in fake_upstream.requests}) == 1


@pytest.mark.parametrize(("pool", "opened_again"), [(8, 4), (12, 0)])
def test_as_many_connections_as_the_pool_holds_are_kept_for_the_next_calls(fake_upstream, settings, monkeypatch,
                                                                           pool, opened_again):
    """12 calls at once, twice: the second dozen reuses what MCPD_UPSTREAM_POOL_SIZE kept of the first's."""
    from llms import transport
    from llms.adapters.base import UpstreamRequest

    settings.UPSTREAM_POOL_SIZE = pool
    monkeypatch.setattr(transport, "SESSION", transport.new_session())
    request = UpstreamRequest(fake_upstream.url + "/v1/chat/completions", {}, CHAT)
    all_open = threading.Barrier(12)

    def call() -> None:
        response = transport.post(request, stream=False, provider="openai")
        all_open.wait(10)  # twelve connections in use at once
        response.body()  # read to its end: the connection goes back to the pool

    def twelve_at_once() -> set[tuple[str, int]]:
        before = len(fake_upstream.requests)
        threads = [threading.Thread(target=call) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        return {request.peer for request in fake_upstream.requests[before:]}

    first = twelve_at_once()
    second = twelve_at_once()
    assert len(first) == 12 and len(second - first) == opened_again


def test_a_whole_reply_must_arrive_within_the_read_timeout(alice, client_for, upstream_llm, fake_upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "late"}}]}).encode()
    fake_upstream.reply(paced_reply([body[i:i + 10] for i in range(0, len(body), 10)], interval=0.1))  # never 0.3 s silent
    response = infer(client_for(alice))
    assert response.status_code == 504 and error_of(response)["code"] == "upstream_timeout"
    assert [(r.status, r.outcome) for r in rows()] == [(504, "error")]


def test_a_gzipped_stream_is_decoded(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(gzipped(openai_stream_frames(["Hello", " there"])))
    frames = sse_body(infer(client_for(alice), {**CHAT, "stream": True})).split(b"\n\n")
    text = "".join(json.loads(f[6:])["choices"][0]["delta"].get("content") or "" for f in frames[:-2])
    assert text == "Hello there" and frames[-2] == b"data: [DONE]"


def test_a_gzipped_passthrough_stream_is_relayed_decoded(alice, client_for, claude, fake_upstream):
    frames = anthropic_stream_frames(["Hello"])
    fake_upstream.reply(gzipped(frames))
    response = client_for(alice).post("/v1/messages", data=json.dumps({**MESSAGES, "stream": True}),
                                      content_type="application/json")
    assert sse_body(response) == "".join(frames).encode()


def test_a_passthrough_stream_cut_mid_event_relays_whole_events_then_its_error(alice, client_for, claude,
                                                                              fake_upstream):
    frames = anthropic_stream_frames(["Hello", " there"])
    fake_upstream.reply(reset_reply([*frames[:3], frames[3][:20]], content_type=SSE, chunked=True))
    response = client_for(alice).post("/v1/messages", data=json.dumps({**MESSAGES, "stream": True}),
                                      content_type="application/json")
    sent, _, error = sse_body(response).decode().rpartition("event: error\ndata: ")
    assert sent == "".join(frames[:3])  # the half event is not relayed: the error event stands alone
    assert json.loads(error)["error"]["type"] == "api_error"
    assert [(r.status, r.outcome) for r in rows()] == [(200, "error")]


def test_a_stream_event_over_the_limit_ends_the_stream_with_one_error(alice, client_for, upstream_llm,
                                                                      fake_upstream, settings):
    settings.UPSTREAM_MAX_BODY_BYTES = 256 * 1024
    first = openai_stream_frames(["Hi"])[1].encode()
    fake_upstream.reply(huge_reply(8 * 1024 * 1024, prefix=first + b'data: {"x":"', chunked=True, content_type=SSE))
    frames = [f for f in sse_body(infer(client_for(alice), {**CHAT, "stream": True})).split(b"\n\n") if f]
    assert json.loads(frames[0][6:])["choices"][0]["delta"]["content"] == "Hi"
    assert json.loads(frames[-1][6:])["error"]["code"] == "upstream_bad_response" and len(frames) == 2
    assert [(r.status, r.outcome) for r in rows()] == [(200, "error")]


def test_an_error_body_is_read_only_up_to_its_bound(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(huge_reply(64 * 1024 * 1024, status=500, content_type="text/html"),
                        json_reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}))
    client = client_for(alice)
    assert infer(client).status_code == 502
    assert infer(client).status_code == 200  # the next call has a connection of its own
