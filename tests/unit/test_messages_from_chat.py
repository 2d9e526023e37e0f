"""chat.completion -> Anthropic Message, and chat.completion.chunk streams -> Anthropic stream events:
recorded chat streams (tests/data/chat_*.sse), literal chunks, and the official anthropic SDK reading the
result."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import BetaErrorResponse, Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from llms.adapters import ADAPTERS
from llms.adapters.base import SseEvent, Usage
from llms.inbound.messages.errors import ERROR_TYPES, error_body, error_type
from llms.inbound.messages.from_chat import MessagesFromChat, message_from_chat
from llms.streaming import Event
from mcpd.errors import (
    UPSTREAM_AUTH_FAILED,
    UPSTREAM_OVERLOADED,
    ApiError,
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderRequestError,
    RateLimited,
    Timeout,
    TooLarge,
    UnsupportedProvider,
    UpstreamError,
)
from mcpd.http import sse_frame
from tests.unit.sse_files import load_events

MODEL = "gpt-4o"  # the Llm's name, as the client called it
_EVENT = TypeAdapter(RawMessageStreamEvent)

# --- a whole answer ---


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    """A chat.completion as an OpenAI-compatible server returns it."""
    return {
        "id": "chatcmpl-BcQ8ko2nz9B7CRvV0uVbcowidHpQU",
        "object": "chat.completion",
        "created": 1748496646,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "logprobs": None,
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 91, "completion_tokens": 14, "total_tokens": 105,
                  "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0}},
        **extra,
    }


def translate(payload: dict[str, Any]) -> dict[str, Any]:
    """message_from_chat, checked against the anthropic SDK's Message type."""
    message = message_from_chat(payload, model=MODEL)
    Message.model_validate(message)
    return message


def test_a_text_completion_becomes_a_message():
    assert translate(completion({"content": "Hi! How can I help?", "refusal": None})) == {
        "id": "msg_BcQ8ko2nz9B7CRvV0uVbcowidHpQU",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Hi! How can I help?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 27, "cache_read_input_tokens": 64, "output_tokens": 14},
    }


def test_tool_calls_become_tool_use_blocks_after_the_text():
    calls = [
        {"id": "call_qOfTGgDrItLORNfC6VwUbyLL", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"Shanghai\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    message = translate(completion({"content": "Checking.", "tool_calls": calls}, "tool_calls"))
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_qOfTGgDrItLORNfC6VwUbyLL", "name": "get_weather",
         "input": {"location": "Shanghai"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_a_tool_call_without_text_has_no_text_block():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = translate(completion({"content": None, "tool_calls": [call]}, "tool_calls"))
    assert [block["type"] for block in message["content"]] == ["tool_use"]


def test_empty_content_is_omitted():
    assert translate(completion({"content": ""}))["content"] == []


@pytest.mark.parametrize("name", ["reasoning_content", "reasoning"])
def test_reasoning_becomes_an_unsigned_thinking_block_first(name):
    message = translate(completion({"content": "12,231", name: "27 * 453 = 10,800 + 1,431"}))
    assert message["content"] == [
        {"type": "thinking", "thinking": "27 * 453 = 10,800 + 1,431", "signature": ""},
        {"type": "text", "text": "12,231"},
    ]


def test_a_refusal_is_what_the_model_said():
    message = translate(completion({"content": None, "refusal": "I can't help with that."}))
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_finish_reason_becomes_stop_reason(finish, stop):
    assert translate(completion({"content": "x"}, finish))["stop_reason"] == stop


def test_an_unknown_finish_reason_is_logged(caplog):
    with caplog.at_level(logging.WARNING):
        translate(completion({"content": "x"}, "eos"))
    assert "'eos'" in caplog.text


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("tool_calls", "tool_use"), ("stop", "tool_use"), (None, "tool_use"), ("eos", "tool_use"),
     ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_tool_calls_mean_tool_use_unless_the_answer_was_cut_short(finish, stop):
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert translate(completion({"tool_calls": [call]}, finish))["stop_reason"] == stop


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 2006, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1920}},
         {"input_tokens": 86, "cache_read_input_tokens": 1920, "output_tokens": 300}),
        ({"prompt_tokens": 91, "completion_tokens": 14, "total_tokens": 105},
         {"input_tokens": 91, "output_tokens": 14}),
        (None, {"input_tokens": 0, "output_tokens": 0}),
    ],
)
def test_usage_counts_cache_reads_apart_from_input(usage, expected):
    payload = completion({"content": "x"})
    payload["usage"] = usage
    assert translate(payload)["usage"] == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [("chatcmpl-abc123", "msg_abc123"), ("9f3a1c2e-6b7d", "msg_9f3a1c2e-6b7d")],
)
def test_the_message_id_is_derived_from_the_completion_id(given, expected):
    assert translate({**completion({"content": "x"}), "id": given})["id"] == expected


def test_a_completion_without_an_id_gets_a_new_message_id():
    payload = completion({"content": "x"})
    del payload["id"]
    first, second = translate(payload)["id"], translate(payload)["id"]
    assert first.startswith("msg_") and second.startswith("msg_") and first != second


def test_a_tool_call_without_an_id_gets_one():
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    [block] = translate(completion({"tool_calls": [call]}, "tool_calls"))["content"]
    assert block["id"].startswith("toolu_")


def test_arguments_sent_as_an_object_are_taken_as_they_are():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    [block] = translate(completion({"tool_calls": [call]}, "tool_calls"))["content"]
    assert block["input"] == {"a": 1}


@pytest.mark.parametrize("arguments", ['{"location": "Par', "[1, 2]", "null", "not json"])
def test_arguments_that_are_not_a_json_object_are_a_bad_response_naming_the_call(arguments):
    call = {"id": "call_BAD", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(UpstreamError) as caught:
        message_from_chat(completion({"tool_calls": [call]}, "tool_calls"), model=MODEL)
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    assert "call_BAD" in caught.value.message


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"choices": []},
        {"choices": [{"index": 0}]},
        {"choices": [{"index": 0, "message": "hi"}]},
        {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": "f"}}]},
        {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}}]},
    ],
)
def test_a_reply_that_is_not_a_chat_completion_is_a_bad_response(payload):
    with pytest.raises(UpstreamError) as caught:
        message_from_chat(payload, model=MODEL, provider="vllm")
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    assert "vllm" in caught.value.message


# --- a stream: helpers ---


def relay_for(provider: str = "openai") -> MessagesFromChat:
    """A relay over the passthrough adapter's translator, for the chat body to_chat gives a stream."""
    return MessagesFromChat(ADAPTERS[provider].stream_translator({"stream": True}), MODEL)


def run(relay: MessagesFromChat, items: list[SseEvent]) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of every event, as ProxyStream drives a relay: feed until done, then finish."""
    events = []
    for item in items:
        events += relay.feed(item)
        if relay.done:
            break
    if relay.done:
        events += relay.finish()
    return [(event.name, json.loads(event.data)) for event in events]


def replay(name: str) -> list[tuple[str, dict[str, Any]]]:
    return run(relay_for(), load_events(name))


def chunk(delta: dict[str, Any], finish: str | None = None) -> SseEvent:
    """A literal chat.completion.chunk as the provider frames it."""
    data = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return SseEvent(event="message", data=json.dumps(data))


def usage_chunk(prompt: int, completion_tokens: int) -> SseEvent:
    data = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                      "total_tokens": prompt + completion_tokens}}
    return SseEvent(event="message", data=json.dumps(data))


DONE = SseEvent(event="message", data="[DONE]")


def call(k: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """One tool_calls fragment."""
    fragment: dict[str, Any] = {"index": k, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment.update(id=call_id, type="function")
        fragment["function"]["name"] = name
    return fragment


def start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, **body: Any) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})


def text(index: int, value: str) -> tuple[str, dict[str, Any]]:
    return delta(index, type="text_delta", text=value)


def args(index: int, value: str) -> tuple[str, dict[str, Any]]:
    return delta(index, type="input_json_delta", partial_json=value)


def stop(index: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_start(message_id: str, usage: dict[str, int] | None = None) -> tuple[str, dict[str, Any]]:
    message = {"id": message_id, "type": "message", "role": "assistant", "content": [], "model": MODEL,
               "stop_reason": None, "stop_sequence": None, "usage": usage or {"input_tokens": 0, "output_tokens": 0}}
    return ("message_start", {"type": "message_start", "message": message})


def message_end(reason: str, usage: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None},
                           "usage": usage}),
        ("message_stop", {"type": "message_stop"}),
    ]


PING = ("ping", {"type": "ping"})
TEXT_BLOCK = {"type": "text", "text": ""}


def assert_well_formed(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Every event is an Anthropic stream event, named by its type; blocks are indexed 0, 1, … and one is
    open at a time; no event refers to a block that has not started or has stopped (Claude Code stops
    reading there, WIRE-FORMATS §6.2)."""
    open_index, next_index = None, 0
    for name, data in events:
        assert name == data["type"]
        if name != "ping":
            _EVENT.validate_python(data)
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            assert data["index"] == open_index
            if name == "content_block_stop":
                open_index = None
        elif name in ("message_delta", "message_stop"):
            assert open_index is None
    assert [name for name, _ in events if name.startswith("message")] == [
        "message_start", "message_delta", "message_stop"]


# --- a stream: the recordings, event by event ---


def test_the_worked_transcript_of_wire_formats_7_1():
    events = replay("chat_weather.sse")
    assert events == [
        message_start("msg_01XgVYxVqbWd3CKZr8sPqL2m"),
        start(0, TEXT_BLOCK),
        PING,
        text(0, "Let me check"),
        text(0, " the weather."),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_9oOUGn7XVM1S9AdJeglwUv1Z", "name": "get_weather", "input": {}}),
        args(1, "{\"lo"),
        args(1, "cation\": \"Boston\"}"),
        stop(1),
        *message_end("tool_use", {"input_tokens": 91, "cache_read_input_tokens": 0, "output_tokens": 30}),
    ]
    assert_well_formed(events)


def test_a_text_stream():
    events = replay("chat_text.sse")
    assert events == [
        message_start("msg_BcQ8ko2nz9B7CRvV0uVbcowidHpQU"),
        start(0, TEXT_BLOCK),
        PING,
        text(0, "Hello"),
        text(0, "! How can I"),
        text(0, " help you today?"),
        stop(0),
        *message_end("end_turn", {"input_tokens": 86, "cache_read_input_tokens": 1920, "output_tokens": 12}),
    ]
    assert_well_formed(events)


def test_reasoning_then_text_is_a_thinking_block_then_a_text_block():
    events = replay("chat_reasoning.sse")
    assert events == [
        message_start("msg_9f3a1c2e-6b7d-4e8f-a1b2-c3d4e5f60718"),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        PING,
        delta(0, type="thinking_delta", thinking="27 * 453: 453 = 400 + 50 + 3"),
        delta(0, type="thinking_delta", thinking="; 10,800 + 1,350 + 81 = 12,231."),
        stop(0),
        start(1, TEXT_BLOCK),
        text(1, "27 * 453 = "),
        text(1, "12,231"),
        stop(1),
        # The usage came in the finish_reason chunk itself (DeepSeek): message_delta follows at once.
        *message_end("end_turn", {"input_tokens": 18, "cache_read_input_tokens": 0, "output_tokens": 96}),
    ]
    assert_well_formed(events)


def test_two_tool_calls_after_text_get_a_block_each():
    events = replay("chat_parallel_tools.sse")
    assert events == [
        message_start("msg_A7xRs3kLmN9pQ2vW"),
        start(0, TEXT_BLOCK),
        PING,
        text(0, "Okay, let's check"),
        text(0, " both cities."),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_9oOUGn7XVM1S9AdJeglwUv1Z", "name": "get_current_weather",
                  "input": {}}),
        args(1, "{\"lo"),
        args(1, "cation\": \"Bos"),
        args(1, "ton, MA\"}"),
        stop(1),
        start(2, {"type": "tool_use", "id": "call_2kT8wQmZ5rYx1VbN3cLp7D4e", "name": "get_current_weather",
                  "input": {}}),
        args(2, "{\"location\""),
        args(2, ": \"Paris, FR\", \"unit\": \"c"),
        args(2, "elsius\"}"),
        stop(2),
        *message_end("tool_use", {"input_tokens": 367, "cache_read_input_tokens": 1024, "output_tokens": 58}),
    ]
    assert_well_formed(events)


def test_without_a_usage_chunk_message_delta_comes_at_the_providers_end():
    relay = relay_for("ollama")
    items = load_events("chat_no_usage.sse")
    events = [(e.name, json.loads(e.data)) for item in items[:-1] for e in relay.feed(item)]
    assert events[-1] == stop(0)  # the finish_reason closed the block; the stop reason waits
    assert not relay.done
    assert run(relay, items[-1:]) == message_end("max_tokens", {"input_tokens": 0, "output_tokens": 0})
    assert relay.done and relay.finish() == []


# --- a stream: what the official anthropic SDK makes of it ---


def sdk_message(events: list[tuple[str, dict[str, Any]]]) -> anthropic.types.Message:
    """The final Message the anthropic SDK's MessageStream accumulates from these events, framed as mcpd's
    web layer frames them (mcpd.http.sse_frame) and read over HTTP by the SDK's own client."""
    body = b"".join(sse_frame(Event(name=name, data=json.dumps(data).encode())) for name, data in events)

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = anthropic.Anthropic(api_key="sk-ant-FAKE", base_url="http://mcpd.test", max_retries=0,
                                 http_client=httpx.Client(transport=httpx.MockTransport(reply)))
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Hi"}]) as stream:
        return stream.get_final_message()


def summary(message: anthropic.types.Message) -> dict[str, Any]:
    """What a client takes from a Message: its blocks' payloads, stop reason and usage."""
    blocks = []
    for block in message.content:
        if block.type == "text":
            blocks.append(("text", block.text))
        elif block.type == "thinking":
            blocks.append(("thinking", block.thinking))
        else:
            blocks.append(("tool_use", block.id, block.name, block.input))
    return {"content": blocks, "stop_reason": message.stop_reason,
            "usage": message.usage.model_dump(exclude_none=True)}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chat_weather.sse", {
            "content": [("text", "Let me check the weather."),
                        ("tool_use", "call_9oOUGn7XVM1S9AdJeglwUv1Z", "get_weather", {"location": "Boston"})],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 91, "cache_read_input_tokens": 0, "output_tokens": 30}}),
        ("chat_text.sse", {
            "content": [("text", "Hello! How can I help you today?")],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 86, "cache_read_input_tokens": 1920, "output_tokens": 12}}),
        ("chat_reasoning.sse", {
            "content": [("thinking", "27 * 453: 453 = 400 + 50 + 3; 10,800 + 1,350 + 81 = 12,231."),
                        ("text", "27 * 453 = 12,231")],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 18, "cache_read_input_tokens": 0, "output_tokens": 96}}),
        ("chat_parallel_tools.sse", {
            "content": [("text", "Okay, let's check both cities."),
                        ("tool_use", "call_9oOUGn7XVM1S9AdJeglwUv1Z", "get_current_weather",
                         {"location": "Boston, MA"}),
                        ("tool_use", "call_2kT8wQmZ5rYx1VbN3cLp7D4e", "get_current_weather",
                         {"location": "Paris, FR", "unit": "celsius"})],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 367, "cache_read_input_tokens": 1024, "output_tokens": 58}}),
        ("chat_no_usage.sse", {
            "content": [("text", "The sky is blue.")],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 0, "output_tokens": 0}}),
    ],
)
def test_the_anthropic_sdk_accumulates_the_stream_into_the_answer(name, expected):
    message = sdk_message(replay(name))
    assert summary(message) == expected
    assert message.model == MODEL and message.id.startswith("msg_")


@pytest.mark.parametrize("name", ["chat_weather.sse", "chat_text.sse", "chat_reasoning.sse",
                                  "chat_parallel_tools.sse", "chat_no_usage.sse"])
def test_the_stream_and_the_whole_answer_agree(name):
    """The recording accumulated as a chat.completion, through message_from_chat, is the Message the SDK
    accumulates from the relayed stream."""
    items = [json.loads(item.data) for item in load_events(name) if item.data != "[DONE]"]
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish, usage, calls = None, None, {}
    for item in items:
        usage = item.get("usage") or usage
        for choice in item["choices"]:
            piece = choice["delta"]
            for key in ("content", "reasoning_content"):
                if piece.get(key):
                    message[key] = (message.get(key) or "") + piece[key]
            for fragment in piece.get("tool_calls") or []:
                entry = calls.setdefault(fragment["index"], {"id": fragment.get("id"), "type": "function",
                                                             "function": {"name": None, "arguments": ""}})
                entry["function"]["name"] = entry["function"]["name"] or fragment["function"].get("name")
                entry["function"]["arguments"] += fragment["function"].get("arguments") or ""
            finish = choice["finish_reason"] or finish
    if calls:
        message["tool_calls"] = [calls[k] for k in sorted(calls)]
    whole = message_from_chat({"id": items[0]["id"], "choices": [{"index": 0, "message": message,
                                                                  "finish_reason": finish}], "usage": usage},
                              model=MODEL)
    assert sdk_message(replay(name)).model_dump(exclude_none=True) == Message.model_validate(whole).model_dump(
        exclude_none=True)


# --- a stream: blocks, one at a time ---


def test_interleaved_call_fragments_wait_for_their_block():
    """A server that sends every call's header first, then the arguments: the second call's block starts
    only once the first call's arguments are whole, and no fragment is lost."""
    relay = relay_for()
    events = run(relay, [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call(0, "", "call_A", "get_weather"), call(1, "", "call_B", "get_time")]}),
        chunk({"tool_calls": [call(1, "{\"zone\": ")]}),
        chunk({"tool_calls": [call(0, "{\"city\": \"Paris\"")]}),
        chunk({"tool_calls": [call(1, "\"CET\"}")]}),
        chunk({"tool_calls": [call(0, "}")]}),
        chunk({}, "tool_calls"),
        usage_chunk(50, 20),
        DONE,
    ])
    assert events[1:] == [
        start(0, {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {}}),
        PING,
        args(0, "{\"city\": \"Paris\""),
        args(0, "}"),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_B", "name": "get_time", "input": {}}),
        args(1, "{\"zone\": "),
        args(1, "\"CET\"}"),
        stop(1),
        *message_end("tool_use", {"input_tokens": 50, "output_tokens": 20}),
    ]
    assert_well_formed(events)
    assert summary(sdk_message(events))["content"] == [
        ("tool_use", "call_A", "get_weather", {"city": "Paris"}), ("tool_use", "call_B", "get_time", {"zone": "CET"})]


def test_text_after_an_incomplete_call_waits_for_the_call():
    events = run(relay_for(), [
        chunk({"tool_calls": [call(0, "{\"q\": ", "call_A", "search")]}),
        chunk({"content": "Searching"}),
        chunk({"tool_calls": [call(0, "\"mcpd\"}")]}),
        chunk({"content": " now."}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    assert events[1:-2] == [
        start(0, {"type": "tool_use", "id": "call_A", "name": "search", "input": {}}),
        PING,
        args(0, "{\"q\": "),
        args(0, "\"mcpd\"}"),
        stop(0),
        start(1, TEXT_BLOCK),
        text(1, "Searching"),
        text(1, " now."),
        stop(1),
    ]
    assert_well_formed(events)


def test_a_whole_call_in_one_fragment_is_one_input_json_delta():
    events = run(relay_for(), [
        chunk({"tool_calls": [call(0, "{\"a\": 1}", "call_A", "f")]}),
        chunk({"tool_calls": [call(1, "{\"b\": 2}", "call_B", "g")]}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    assert [event for event in events if event[0] == "content_block_delta"] == [
        args(0, "{\"a\": 1}"), args(1, "{\"b\": 2}")]
    assert_well_formed(events)


def test_a_fragment_for_a_call_whose_block_has_stopped_is_dropped_and_logged(caplog):
    with caplog.at_level(logging.WARNING):
        events = run(relay_for(), [
            chunk({"tool_calls": [call(0, "{}", "call_A", "f")]}),
            chunk({"tool_calls": [call(1, "{}", "call_B", "g")]}),
            chunk({"tool_calls": [call(0, " ")]}),
            chunk({}, "tool_calls"),
            DONE,
        ])
    assert_well_formed(events)
    assert [event for event in events if event[0] == "content_block_delta"] == [args(0, "{}"), args(1, "{}")]
    assert "dropped" in caplog.text


def test_a_call_whose_arguments_never_complete_is_closed_by_the_finish_reason():
    events = run(relay_for(), [
        chunk({"tool_calls": [call(0, "{\"path\": \"/tm", "call_A", "Read")]}),
        chunk({"content": "cut"}),
        chunk({}, "length"),
        DONE,
    ])
    assert events[1:] == [
        start(0, {"type": "tool_use", "id": "call_A", "name": "Read", "input": {}}),
        PING,
        args(0, "{\"path\": \"/tm"),
        stop(0),
        start(1, TEXT_BLOCK),
        text(1, "cut"),
        stop(1),
        # Cut short by max tokens: not a tool_use turn, whose call the client would run.
        *message_end("max_tokens", {"input_tokens": 0, "output_tokens": 0}),
    ]
    assert_well_formed(events)


def test_a_call_without_an_id_or_an_index_gets_them():
    events = run(relay_for(), [
        chunk({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"function": {"name": "g", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [block["name"] for block in starts] == ["f", "g"]
    assert all(block["id"].startswith("toolu_") for block in starts)
    assert_well_formed(events)


def test_a_call_waits_for_its_name():
    events = run(relay_for(), [
        chunk({"tool_calls": [{"index": 0, "id": "call_A", "function": {"arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    assert events[1] == start(0, {"type": "tool_use", "id": "call_A", "name": "f", "input": {}})
    assert_well_formed(events)


def test_thinking_after_text_opens_a_new_block():
    events = run(relay_for(), [
        chunk({"content": "First."}),
        chunk({"reasoning": "Hmm."}),
        chunk({"content": "Second."}),
        chunk({}, "stop"),
        DONE,
    ])
    assert [data["content_block"]["type"] for name, data in events if name == "content_block_start"] == [
        "text", "thinking", "text"]
    assert_well_formed(events)


def test_a_delta_with_reasoning_under_both_names_counts_once():
    events = run(relay_for(), [chunk({"reasoning_content": "Hmm.", "reasoning": "Hmm."}), chunk({}, "stop"), DONE])
    assert delta(0, type="thinking_delta", thinking="Hmm.") in events
    assert len([name for name, _ in events if name == "content_block_delta"]) == 1


def test_an_empty_answer_has_no_blocks():
    events = run(relay_for(), [chunk({"role": "assistant", "content": ""}), chunk({}, "stop"), usage_chunk(5, 1)])
    assert events == [message_start("msg_7"), *message_end("end_turn", {"input_tokens": 5, "output_tokens": 1})]


def test_content_in_the_finish_reason_chunk_comes_before_the_stop():
    events = run(relay_for(), [chunk({"content": "Bye"}, "stop"), DONE])
    assert events[1:5] == [start(0, TEXT_BLOCK), PING, text(0, "Bye"), stop(0)]


# --- a stream: its end, errors, keep-alive ---


def test_a_provider_end_without_a_finish_reason_is_not_done():
    """ProxyStream then answers with an error event rather than an invented stop (WIRE-FORMATS §7.1)."""
    relay = relay_for()
    events = run(relay, [chunk({"content": "Hel"}), DONE])
    assert not relay.done
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping", "content_block_delta"]


def test_message_stop_makes_the_relay_done_before_the_providers_end():
    relay = relay_for()
    run(relay, [chunk({"content": "Hi"}), chunk({}, "stop"), usage_chunk(3, 1)])
    assert relay.done and relay.finish() == []
    assert relay.feed(DONE) == []


def test_usage_is_the_provider_translators():
    relay = relay_for()
    run(relay, load_events("chat_parallel_tools.sse"))
    assert relay.usage == Usage(prompt_tokens=1391, completion_tokens=58, cache_read_tokens=1024)


def test_usage_known_at_the_start_goes_into_message_start():
    data = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 32}}}
    [first, *_] = run(relay_for(), [SseEvent(event="message", data=json.dumps(data))])
    assert first == message_start("msg_7", {"input_tokens": 8, "cache_read_input_tokens": 32, "output_tokens": 1})


class DictTranslator:
    """A provider translator that hands back chunks as dicts (the anthropic adapter's kind)."""

    def __init__(self, chunks: list[dict[str, Any]]):
        self._chunks, self.usage, self.done = chunks, Usage(), False

    def feed(self, event: SseEvent) -> list[dict[str, Any]]:
        self.done = True
        return self._chunks

    def finish(self) -> list[dict[str, Any]]:
        return []


def test_chunks_given_as_dicts_are_read_too():
    chunks = [{"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}]
    relay = MessagesFromChat(DictTranslator(chunks), MODEL)
    events = run(relay, [DONE])
    assert events[0] == message_start("msg_x") and text(0, "Hi") in events and events[-1][0] == "message_stop"


def test_a_provider_error_event_is_raised_for_proxy_stream_to_report():
    relay = relay_for()
    relay.feed(chunk({"content": "Hi"}))
    error = SseEvent(event="message", data=json.dumps({"error": {"message": "overloaded", "type": "server_error"}}))
    with pytest.raises(UpstreamError):
        relay.feed(error)


@pytest.mark.parametrize("data", ["not json", "[1, 2]"])
def test_a_chunk_that_is_not_a_json_object_is_a_bad_response(data):
    relay = MessagesFromChat(DictTranslator([data]), MODEL)  # type: ignore[list-item]
    with pytest.raises(UpstreamError) as caught:
        relay.feed(DONE)
    assert caught.value.code == "upstream_bad_response"


def test_fail_is_one_anthropic_error_event():
    [event] = relay_for().fail(UpstreamError("The provider is overloaded.", code=UPSTREAM_OVERLOADED))
    assert (event.name, json.loads(event.data)) == (
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "The provider is overloaded."}})


def test_the_anthropic_sdk_raises_the_error_event():
    relay = relay_for()
    events = run(relay, [chunk({"content": "The answer is"})])
    events += [(e.name, json.loads(e.data)) for e in relay.fail(RateLimited("slow down"))]
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_message(events)
    assert caught.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


def test_keepalive_is_a_ping():
    event = relay_for().keepalive()
    assert (event.name, event.data) == ("ping", b'{"type":"ping"}')


# --- errors in Anthropic's shape ---


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (PermissionDenied("no"), "permission_error"),
        (NotFound("none"), "not_found_error"),
        (TooLarge("big"), "request_too_large"),
        (RateLimited("slow"), "rate_limit_error"),
        (InternalError("bug"), "api_error"),
        (UpstreamError("down"), "api_error"),
        (UpstreamError("key", code=UPSTREAM_AUTH_FAILED), "api_error"),
        (Timeout("slow"), "timeout_error"),
        (UpstreamError("busy", code=UPSTREAM_OVERLOADED), "overloaded_error"),
        (ProviderRequestError("busy", status=529), "overloaded_error"),
        (ProviderRequestError("context too long", status=400), "invalid_request_error"),
        (ProviderRequestError("payment", status=402), "billing_error"),
        (ProviderRequestError("teapot", status=418), "invalid_request_error"),
        (UnsupportedProvider("gemini-cli"), "api_error"),
    ],
)
def test_error_type_follows_the_contracts_table(error, expected):
    assert error_type(error) == expected


def test_the_contracts_status_table_is_covered():
    assert {status: ERROR_TYPES[status] for status in (400, 401, 403, 404, 413, 429, 500, 502, 504, 529)} == {
        400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
        404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
        502: "api_error", 504: "timeout_error", 529: "overloaded_error"}


@pytest.mark.parametrize("error", [InvalidRequest("bad"), RateLimited("slow"), Timeout("t"), UpstreamError("x"),
                                   ApiError("?")])
def test_error_body_is_anthropics_error_shape(error):
    body = error_body(error)
    BetaErrorResponse.model_validate(body)
    assert body == {"type": "error", "error": {"type": error_type(error), "message": error.message}}


# --- purity ---


def test_the_messages_translation_imports_no_django_drf_or_requests():
    code = ("import sys, llms.inbound.messages.to_chat, llms.inbound.messages.from_chat; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'requests', 'urllib3'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
