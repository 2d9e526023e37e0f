"""Anthropic SSE events -> OpenAI chat.completion.chunk objects: recorded streams and literal events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from llms.adapters.anthropic import AnthropicAdapter
from llms.adapters.base import SseEvent, Usage
from mcpd.errors import ApiError, ProviderRequestError, RateLimited, UpstreamError
from tests.unit.sse_files import DATA_DIR, load_events

NOW = 1_750_000_000
ADAPTER = AnthropicAdapter(clock=lambda: NOW)
CHUNK_ID = "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
MODEL = "claude-sonnet-4-5-20250929"
RECORDINGS = sorted(path.name for path in DATA_DIR.glob("anthropic_*.sse"))
WITH_USAGE = {"stream": True, "stream_options": {"include_usage": True}}


def feed_all(translator: Any, events: list[SseEvent]) -> list[dict[str, Any]]:
    """Every chunk for these events, each checked against the openai SDK's ChatCompletionChunk."""
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    chunks += translator.finish() if translator.done else []
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def replay(name: str, body: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """The translator and its chunks for a recorded stream."""
    translator = ADAPTER.stream_translator(body or {"stream": True})
    return translator, feed_all(translator, load_events(name))


def event(data: dict[str, Any]) -> SseEvent:
    """A literal Anthropic event."""
    return SseEvent(event=data["type"], data=json.dumps(data))


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def content(chunks: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(delta.get(key) or "" for delta in deltas(chunks))


def finish_reasons(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        chunk["choices"][0]["finish_reason"]
        for chunk in chunks
        if chunk["choices"] and chunk["choices"][0]["finish_reason"]
    ]


def accumulated(chunks: list[dict[str, Any]]) -> Any:
    """The completion the openai SDK's own stream accumulation builds from these chunks."""
    state = ChatCompletionStreamState()
    for chunk in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
    # get_final_completion() refuses finish_reason "length"; the snapshot is the same accumulation.
    return state.current_completion_snapshot


def calls_of(message: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(id, name, parsed arguments) of a message's tool calls."""
    return [
        (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"]))
        for call in message.get("tool_calls") or []
    ]


START = {
    "type": "message_start",
    "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": MODEL,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    },
}


# --- the recordings themselves ---


@pytest.mark.parametrize("name", RECORDINGS)
def test_each_recording_is_a_valid_anthropic_stream(name):
    events = load_events(name)
    kinds = [item.event for item in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] in ("message_stop", "error")
    assert all(item.event == json.loads(item.data)["type"] for item in events)
    parse = TypeAdapter(RawMessageStreamEvent).validate_json
    for item in events:
        if item.event not in ("ping", "error"):
            parse(item.data)


# --- plain text ---


def test_a_text_stream_becomes_chunks():
    translator, chunks = replay("anthropic_text.sse")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": CHUNK_ID,
            "object": "chat.completion.chunk",
            "created": NOW,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    assert chunks == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": "! How can I"}),
        chunk({"content": " help you today?"}),
        chunk({}, "stop"),
    ]
    assert translator.done
    assert translator.usage == Usage(prompt_tokens=21, completion_tokens=12, cache_read_tokens=0, cache_write_tokens=0)
    assert translator.finish() == []


@pytest.mark.parametrize("name", [name for name in RECORDINGS if name != "anthropic_overloaded.sse"])
def test_every_chunk_shares_one_id_created_and_model_and_choice_index_zero(name):
    translator, chunks = replay(name)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {(chunk["id"], chunk["created"], chunk["model"]) for chunk in chunks} == {
        (chunks[0]["id"], NOW, MODEL)
    }
    assert chunks[0]["id"].startswith("chatcmpl-msg_")
    assert {chunk["choices"][0]["index"] for chunk in chunks} == {0}
    assert len(finish_reasons(chunks)) == 1
    assert translator.done


def test_a_max_tokens_stop_is_length():
    translator, chunks = replay("anthropic_max_tokens.sse")
    assert finish_reasons(chunks) == ["length"]
    assert content(chunks) == "Once upon a time, in a land far, far away, there lived a"
    assert translator.usage == Usage(prompt_tokens=25, completion_tokens=16, cache_read_tokens=0, cache_write_tokens=0)


# --- thinking ---


def test_thinking_becomes_reasoning_content_and_signatures_are_dropped():
    translator, chunks = replay("anthropic_thinking.sse")
    assert content(chunks, "reasoning_content") == (
        "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
        "\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231"
    )
    assert content(chunks) == "27 * 453 = 12,231"
    assert "EqQBCgIYAhIM" not in json.dumps(chunks)
    assert all(set(delta) <= {"role", "content", "reasoning_content"} for delta in deltas(chunks))
    assert finish_reasons(chunks) == ["stop"]
    assert translator.usage == Usage(prompt_tokens=46, completion_tokens=151, cache_read_tokens=0, cache_write_tokens=0)


# --- parallel tool calls ---


def test_two_parallel_tool_calls_get_their_own_indices():
    translator, chunks = replay("anthropic_parallel_tools.sse")
    assert content(chunks) == "I'll check the weather in both cities."
    calls = [call for delta in deltas(chunks) for call in delta.get("tool_calls", [])]
    assert all(len(delta.get("tool_calls", [])) <= 1 for delta in deltas(chunks))
    firsts = [call for call in calls if "id" in call]
    assert firsts == [
        {
            "index": 0,
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "toolu_01B7fHx2kRq9mVn3sLp8dYe4",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    ]
    for index, expected in [
        (0, {"location": "Paris, France", "unit": "celsius"}),
        (1, {"location": "Tokyo, Japan", "unit": "celsius"}),
    ]:
        pieces = [call for call in calls if call["index"] == index]
        assert pieces[0] in firsts
        assert all(
            set(call) == {"index", "function"} and set(call["function"]) == {"arguments"}
            for call in pieces[1:]
        )
        assert json.loads("".join(call["function"]["arguments"] for call in pieces)) == expected
    assert finish_reasons(chunks) == ["tool_calls"]
    assert translator.usage == Usage(prompt_tokens=18 + 1024, completion_tokens=112, cache_read_tokens=1024, cache_write_tokens=0)


def test_the_openai_sdk_accumulates_the_parallel_calls_into_valid_json():
    _, chunks = replay("anthropic_parallel_tools.sse")
    state = ChatCompletionStreamState()
    for chunk in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
    choice = state.get_final_completion().choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather in both cities."
    assert [
        (call.id, call.function.name, json.loads(call.function.arguments))
        for call in choice.message.tool_calls
    ] == [
        ("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("toolu_01B7fHx2kRq9mVn3sLp8dYe4", "get_weather", {"location": "Tokyo, Japan", "unit": "celsius"}),
    ]


@pytest.mark.parametrize("name", [name for name in RECORDINGS if name != "anthropic_overloaded.sse"])
def test_the_stream_and_the_non_streaming_reply_agree(name):
    """The anthropic SDK's accumulation of a recording, parsed, equals the openai SDK's accumulation of our
    chunks: streaming and non-streaming translate the same answer the same way."""
    events = load_events(name)
    snapshot = None
    for item in events:
        if item.event != "ping":
            snapshot = accumulate_event(event=json.loads(item.data), current_snapshot=snapshot)
    body = {"response_format": {"type": "json_object"}} if "json" in name else {}
    completion, usage = ADAPTER.parse_response(snapshot.model_dump(mode="json"))
    translator = ADAPTER.stream_translator(body)
    streamed = accumulated(feed_all(translator, events)).model_dump(mode="json")
    expected, got = completion["choices"][0], streamed["choices"][0]
    assert got["finish_reason"] == expected["finish_reason"]
    assert (got["message"]["content"] or None) == (expected["message"]["content"] or None)
    assert calls_of(got["message"]) == calls_of(expected["message"])
    assert got["message"].get("reasoning_content") == expected["message"].get("reasoning_content")
    assert translator.usage == usage
    assert streamed["id"] == completion["id"]


# --- response_format ---


def test_the_response_format_tool_streams_as_content():
    _, chunks = replay(
        "anthropic_json_response.sse", {"stream": True, "response_format": {"type": "json_object"}}
    )
    assert json.loads(content(chunks)) == {"name": "Ada Lovelace", "born": 1815}
    assert not any("tool_calls" in delta for delta in deltas(chunks))
    assert finish_reasons(chunks) == ["stop"]


def test_text_is_suppressed_in_response_format_mode():
    translator = ADAPTER.stream_translator(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}
    )
    translator.feed(event(START))
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sure!"}}
    assert translator.feed(event(text)) == []


# --- usage ---


def test_include_usage_adds_a_final_usage_chunk_with_no_choices():
    translator, chunks = replay("anthropic_parallel_tools.sse", WITH_USAGE)
    assert chunks[-1] == {
        "id": "chatcmpl-msg_01Pa7aLLeLT00LsXyZw3rTqu",
        "object": "chat.completion.chunk",
        "created": NOW,
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": 1042,
            "completion_tokens": 112,
            "total_tokens": 1154,
            "prompt_tokens_details": {"cached_tokens": 1024},
        },
    }
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert accumulated(chunks).usage.total_tokens == 1154


@pytest.mark.parametrize("body", [{}, {"stream": True}, {"stream_options": {"include_usage": False}}])
def test_no_usage_chunk_unless_asked(body):
    translator, chunks = replay("anthropic_text.sse", body)
    assert all(chunk["choices"] and "usage" not in chunk for chunk in chunks)
    assert translator.usage == Usage(prompt_tokens=21, completion_tokens=12, cache_read_tokens=0, cache_write_tokens=0)


def test_message_delta_usage_overwrites_and_never_adds():
    translator = ADAPTER.stream_translator(WITH_USAGE)
    translator.feed(event(START))
    assert translator.usage == Usage(prompt_tokens=25, completion_tokens=1)
    first = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 10},
    }
    second = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 100, "output_tokens": 15},
    }
    assert finish_reasons(translator.feed(event(first))) == ["stop"]
    assert translator.usage == Usage(prompt_tokens=25, completion_tokens=10)
    assert translator.feed(event(second)) == []  # one finish chunk only
    assert translator.usage == Usage(prompt_tokens=125, completion_tokens=15, cache_read_tokens=100)
    [usage_chunk] = translator.feed(event({"type": "message_stop"}))
    assert usage_chunk["usage"] == {
        "prompt_tokens": 125,
        "completion_tokens": 15,
        "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def test_a_stream_without_usage_leaves_usage_unknown():
    translator = ADAPTER.stream_translator(WITH_USAGE)
    start = json.loads(json.dumps(START))
    del start["message"]["usage"]
    translator.feed(event(start))
    translator.feed(
        event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}})
    )
    [usage_chunk] = translator.feed(event({"type": "message_stop"}))
    assert translator.usage == Usage()
    assert usage_chunk["usage"]["total_tokens"] == 0


# --- stream control ---


def test_message_stop_without_message_delta_still_finishes_once():
    translator = ADAPTER.stream_translator({})
    translator.feed(event(START))
    assert finish_reasons(translator.feed(event({"type": "message_stop"}))) == ["stop"]
    assert translator.done


def test_ping_and_unknown_events_are_ignored():
    translator = ADAPTER.stream_translator({})
    translator.feed(event(START))
    assert translator.feed(SseEvent(event="ping", data='{"type": "ping"}')) == []
    assert translator.feed(SseEvent(event="brand_new_event", data='{"type": "brand_new_event"}')) == []
    unknown_delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "x": 1}}
    assert translator.feed(event(unknown_delta)) == []
    assert not translator.done


def test_the_event_type_is_read_from_data_when_the_event_line_is_missing():
    translator = ADAPTER.stream_translator({})
    [chunk] = translator.feed(SseEvent(event="message", data=json.dumps(START)))
    assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_tool_call_indices_count_calls_not_content_blocks():
    translator = ADAPTER.stream_translator({})
    translator.feed(event(START))
    start = {
        "type": "content_block_start",
        "index": 3,
        "content_block": {"type": "tool_use", "id": "toolu_X", "name": "f", "input": {}},
    }
    [chunk] = translator.feed(event(start))
    assert chunk["choices"][0]["index"] == 0
    assert chunk["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    piece = {
        "type": "content_block_delta",
        "index": 3,
        "delta": {"type": "input_json_delta", "partial_json": "{}"},
    }
    [chunk] = translator.feed(event(piece))
    assert chunk["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}


def test_an_overloaded_error_mid_stream_raises_the_mapped_error():
    translator = ADAPTER.stream_translator({})
    events = load_events("anthropic_overloaded.sse")
    chunks = [chunk for item in events[:-1] for chunk in translator.feed(item)]
    assert content(chunks) == "The answer is"
    with pytest.raises(UpstreamError) as caught:
        translator.feed(events[-1])
    assert (caught.value.status, caught.value.code) == (502, "upstream_overloaded")
    assert "Overloaded" in caught.value.message
    assert not translator.done


@pytest.mark.parametrize(
    ("kind", "error_class", "status"),
    [
        ("overloaded_error", UpstreamError, 502),
        ("api_error", UpstreamError, 502),
        ("rate_limit_error", RateLimited, 429),
        ("invalid_request_error", ProviderRequestError, 400),
    ],
)
def test_an_error_event_raises_by_type(kind, error_class, status):
    translator = ADAPTER.stream_translator({})
    translator.feed(event(START))
    with pytest.raises(ApiError) as caught:
        translator.feed(event({"type": "error", "error": {"type": kind, "message": "nope"}}))
    assert type(caught.value) is error_class and caught.value.status == status


def test_a_stream_that_ends_before_message_stop_is_not_done():
    """Whether a stream ended early is decided once, by ProxyStream, from `done`: here it stays False."""
    translator = ADAPTER.stream_translator({})
    translator.feed(event(START))
    assert translator.done is False and translator.finish() == []


@pytest.mark.parametrize("data", ["not json", "[1, 2]"])
def test_a_malformed_event_is_an_upstream_error(data):
    with pytest.raises(UpstreamError):
        ADAPTER.stream_translator({}).feed(SseEvent(event="content_block_delta", data=data))


def test_each_translator_is_fresh():
    first = ADAPTER.stream_translator({})
    feed_all(first, load_events("anthropic_parallel_tools.sse"))
    second = ADAPTER.stream_translator({})
    assert not second.done and second.usage == Usage()
    _, chunks = replay("anthropic_parallel_tools.sse")
    assert [
        call["index"] for delta in deltas(chunks) for call in delta.get("tool_calls", []) if "id" in call
    ] == [0, 1]

