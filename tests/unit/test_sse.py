"""Splitting and parsing a provider's server-sent events (llms/sse.py): however the bytes are cut, in
linear time, with a limit on one event."""

from __future__ import annotations

import time

import pytest
import sseclient

from llms.sse import EventSplitter, EventTooLarge, parse_event

STREAM = (b'event: message_start\ndata: {"a": 1}\n\n: a comment\n\ndata: two\ndata: lines\r\n\r\n'
          b"event: ping\rdata: {}\r\rdata: [DONE]\n\n")


def split_in_pieces(raw: bytes, size: int) -> tuple[bytes, list[bytes], bytes]:
    splitter = EventSplitter()
    done, blocks = b"", []
    for start in range(0, len(raw), size):
        out, found = splitter.split(raw[start:start + size])
        done += out
        blocks += found
    return done, blocks, splitter.rest()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 17, 1000])
def test_events_are_the_same_however_the_bytes_are_cut(size):
    done, blocks, rest = split_in_pieces(STREAM + b"data: tail", size)
    assert done == STREAM and rest == b"data: tail"  # the bytes as they came, whole events only
    assert [parse_event(block) for block in blocks] == [
        ("message_start", '{"a": 1}'), None, ("message", "two\nlines"), ("ping", "{}"), ("message", "[DONE]")]


def test_parsing_agrees_with_sseclient():
    ours = [parse_event(block) for block in split_in_pieces(STREAM, 7)[1]]
    theirs = [(e.event, e.data) for e in sseclient.SSEClient(iter([STREAM])).events()]
    assert [event for event in ours if event] == theirs


@pytest.mark.parametrize("block, event", [
    (b"data:no space", ("message", "no space")),
    (b"data:  two spaces", ("message", " two spaces")),
    (b"data", ("message", "")),
    (b"event: x", None),
    (b"id: 7\nretry: 10\nunknown: y\ndata: d", ("message", "d")),
])
def test_fields_are_read_as_the_specification_says(block, event):
    assert parse_event(block) == event


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(UnicodeDecodeError):
        parse_event(b"data: \xff\xfe")


def test_one_huge_event_is_split_in_linear_time():
    splitter = EventSplitter()
    piece = b"x" * 65536
    started = time.monotonic()
    splitter.split(b'data: {"x": "')
    for _ in range(800):  # 50 MiB
        assert splitter.split(piece) == (b"", [])
    done, [block] = splitter.split(b'"}\n\n')
    assert time.monotonic() - started < 2.0  # quadratic took 48 s
    assert len(block) == 800 * 65536 + 15 and done == block + b"\n\n"


def test_a_trickle_is_split_in_linear_time():
    event = b"data: " + b"y" * 200_000 + b"\n\n"
    splitter = EventSplitter()
    started = time.monotonic()
    found = [block for i in range(len(event)) for block in splitter.split(event[i:i + 1])[1]]
    assert time.monotonic() - started < 2.0 and len(found) == 1


def test_an_event_over_the_limit_is_refused_before_it_ends():
    splitter = EventSplitter(limit=1000)
    splitter.split(b"data: ok\n\n" + b"data: " + b"z" * 900)
    with pytest.raises(EventTooLarge):
        splitter.split(b"z" * 200)


def test_many_small_events_fit_a_small_limit():
    splitter = EventSplitter(limit=100)
    _, blocks = splitter.split(b"data: 0123456789\n\n" * 1000)
    assert len(blocks) == 1000 and not splitter.inside_event
