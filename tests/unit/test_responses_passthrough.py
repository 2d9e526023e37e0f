"""The relay of a Responses passthrough: the provider's bytes as they came, a copy read for usage, the
terminal event and a failure; mcpd's own response.failed numbered after the provider's events."""

from __future__ import annotations

import json

from llms.inbound.responses.passthrough import KEEPALIVE, PassthroughRelay
from llms.streaming import Event
from mcpd.errors import UpstreamError
from tests.fakes.upstream import responses_stream_frames


def stream(*pieces: str, **kwargs) -> list[bytes]:
    return [frame.encode() for frame in responses_stream_frames(list(pieces), **kwargs)]


def test_bytes_pass_as_they_came_split_anywhere_and_usage_is_read_from_the_terminal_event():
    body = b"".join(stream("Hello", " there", usage={"input_tokens": 50, "input_tokens_details": {
        "cached_tokens": 40}, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 57}))
    relay = PassthroughRelay("gpt", {"input": "x"})
    out = []
    for at in range(0, len(body), 37):  # chunks that cut events, lines and JSON anywhere
        out += relay.feed(body[at:at + 37])
    assert b"".join(event.data for event in out) == body and {event.kind for event in out} == {"raw"}
    assert relay.done and relay.failed is None
    usage = relay.usage
    assert (usage.prompt_tokens, usage.cache_read_tokens, usage.completion_tokens) == (50, 40, 7)


def test_keep_alive_comments_go_only_between_the_providers_events():
    relay = PassthroughRelay("gpt", {"input": "x"})
    first, second = stream("x")[:2]
    relay.feed(first)
    assert relay.keepalive() == KEEPALIVE
    relay.feed(second[:20])
    assert relay.keepalive() is None
    relay.feed(second[20:])
    assert relay.keepalive() == KEEPALIVE


def test_mcpds_failure_continues_the_providers_response_and_numbering():
    frames = stream("a", "b", "c")
    relay = PassthroughRelay("gpt", {"input": "x"})
    for frame in frames[:7]:
        relay.feed(frame)
    created = json.loads(frames[0].split(b"data: ", 1)[1])
    error, event = relay.fail(UpstreamError("The provider went away.", code="upstream_stream_incomplete"))
    assert (error.name, event.name) == ("error", "response.failed")
    assert json.loads(error.data) == {"type": "error", "sequence_number": 7, "code": "upstream_stream_incomplete",
                                      "message": "The provider went away.", "param": None}
    failed = json.loads(event.data)
    assert failed["sequence_number"] == 8
    assert failed["response"]["id"] == created["response"]["id"]
    assert failed["response"]["status"] == "failed" and failed["response"]["output"] == []
    assert failed["response"]["error"] == {"code": "server_error", "message": "The provider went away."}


def test_a_failure_before_any_event_is_still_a_response():
    error, event = PassthroughRelay("gpt", {"input": "x"}).fail(UpstreamError("No answer."))
    failed = json.loads(event.data)
    assert json.loads(error.data)["sequence_number"] == 0 and failed["sequence_number"] == 1
    assert failed["response"]["id"].startswith("resp_") and failed["response"]["model"] == "gpt"
    assert failed["response"]["error"]["code"] == "server_error"


def test_an_error_event_fails_the_relay_but_waits_for_the_terminal_event():
    relay = PassthroughRelay("gpt", {"input": "x"})
    error = b'event: error\ndata: {"type":"error","sequence_number":3,"code":"server_error","message":"Boom"}\n\n'
    assert relay.feed(error) == [Event(error, kind="raw")]
    assert relay.failed is not None and relay.failed.status == 502 and not relay.done
    relay.feed(b'event: response.failed\ndata: {"type":"response.failed","sequence_number":4,"response":'
               b'{"status":"failed","error":{"code":"server_error","message":"Boom"}}}\n\n')
    assert relay.done and "Boom" in relay.failed.message


def test_a_failed_response_alone_fails_the_relay():
    relay = PassthroughRelay("gpt", {"input": "x"})
    relay.feed(b'event: response.failed\ndata: {"type":"response.failed","sequence_number":0,"response":'
               b'{"status":"failed","error":{"code":"rate_limit_exceeded","message":"Too many"}}}\n\n')
    assert relay.done and relay.failed.status == 429 and relay.failed.message == "Too many"


def test_a_text_delta_that_quotes_sequence_number_does_not_move_the_numbering():
    relay = PassthroughRelay("gpt", {"input": "x"})
    relay.feed(b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
               b'"delta":"\\"sequence_number\\": 99","sequence_number":2}\n\n')
    assert json.loads(relay.fail(UpstreamError("x"))[0].data)["sequence_number"] == 3
