"""chat.completion -> Response, and chat.completion.chunk streams -> Responses stream events: recorded chat
streams (tests/data/chat_*.sse), literal chunks, and the official openai SDK reading the result."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llms.adapters import ADAPTERS
from llms.adapters.base import SseEvent, Usage
from llms.inbound.responses.from_chat import ResponsesFromChat, response_from_chat
from llms.inbound.responses.output import InputDecoder, custom_input
from llms.streaming import Event
from mcpd.errors import InternalError, InvalidRequest, RateLimited, UpstreamError
from mcpd.http import sse_frame
from tests.unit.sse_files import load_events

MODEL = "my-llm"  # the Llm's name, as the client called it
REQUEST: dict[str, Any] = {"model": MODEL, "input": "Hi", "stream": True}
PATCH_TOOL = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
              "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" LF'}}
SHELL_TOOL = {"type": "function", "name": "shell_command", "description": "Runs a shell command.", "strict": False,
              "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                                                              "workdir": {"type": "string"}}, "required": ["command"]}}
CODEX = {**REQUEST, "tools": [SHELL_TOOL, PATCH_TOOL], "tool_choice": "auto", "parallel_tool_calls": False}
CHAT_BODY = {"stream": True, "stream_options": {"include_usage": True}}  # what to_chat gives a stream
_EVENT = TypeAdapter(ResponseStreamEvent)

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


def translate(payload: dict[str, Any], request: dict[str, Any] = REQUEST) -> dict[str, Any]:
    """response_from_chat, checked against the openai SDK's Response type."""
    answer = response_from_chat(payload, model=MODEL, request=request)
    Response.model_validate(answer)
    return answer


def function(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


BASE = "BcQ8ko2nz9B7CRvV0uVbcowidHpQU"
ECHO = {
    "background": False, "instructions": None, "max_output_tokens": None, "max_tool_calls": None, "metadata": {},
    "parallel_tool_calls": True, "previous_response_id": None, "prompt_cache_key": None,
    "reasoning": {"effort": None, "summary": None}, "safety_identifier": None, "store": False, "temperature": None,
    "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
    "top_logprobs": None, "top_p": None, "truncation": "disabled", "user": None,
}
USAGE = {"input_tokens": 91, "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
         "output_tokens": 14, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 105}


def test_a_text_completion_becomes_a_response():
    assert translate(completion({"content": "Hi! How can I help?", "refusal": None})) == {
        "id": f"resp_{BASE}",
        "object": "response",
        "created_at": 1748496646,
        "status": "completed",
        "completed_at": 1748496646,
        "error": None,
        "incomplete_details": None,
        "model": MODEL,
        "output": [{"id": f"msg_{BASE}_0", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                                 "text": "Hi! How can I help?"}]}],
        "usage": USAGE,
        **ECHO,
    }


def test_tool_calls_become_function_call_items_after_the_message():
    calls = [function("call_qOfTGgDrItLORNfC6VwUbyLL", "get_weather", '{"location":"Shanghai"}'),
             function("call_2", "get_time", "")]
    answer = translate(completion({"content": "Checking.", "tool_calls": calls}, "tool_calls"))
    assert answer["status"] == "completed"
    assert answer["output"][1:] == [
        {"id": f"fc_{BASE}_1", "type": "function_call", "status": "completed",
         "call_id": "call_qOfTGgDrItLORNfC6VwUbyLL", "name": "get_weather", "arguments": '{"location":"Shanghai"}'},
        {"id": f"fc_{BASE}_2", "type": "function_call", "status": "completed", "call_id": "call_2",
         "name": "get_time", "arguments": ""},
    ]


def test_a_call_of_a_custom_tool_is_a_custom_tool_call_with_its_input():
    call = function("call_P", "apply_patch", '{"input": "*** Begin Patch\\n+caf\\u00e9\\n*** End Patch\\n"}')
    [item] = translate(completion({"content": None, "tool_calls": [call]}, "tool_calls"), CODEX)["output"]
    assert item == {"id": f"ctc_{BASE}_0", "type": "custom_tool_call", "status": "completed", "call_id": "call_P",
                    "name": "apply_patch", "input": "*** Begin Patch\n+café\n*** End Patch\n"}


@pytest.mark.parametrize(
    ("arguments", "value"),
    [
        ("*** Begin Patch\n*** End Patch\n", "*** Begin Patch\n*** End Patch\n"),  # raw text, as a model wrote it
        ('{"input": "*** Begin Patch\\n*** Upd', "*** Begin Patch\n*** Upd"),  # cut short: what of it came
        ('{"patch": "x"}', '{"patch": "x"}'),
        ({"input": "as an object"}, "as an object"),
    ],
)
def test_custom_tool_arguments_that_are_not_the_input_object_are_taken_as_they_can_be(arguments, value):
    call = function("call_P", "apply_patch", arguments)
    [item] = translate(completion({"tool_calls": [call]}, "tool_calls"), CODEX)["output"]
    assert item["input"] == value


@pytest.mark.parametrize("name", ["reasoning_content", "reasoning"])
def test_reasoning_becomes_a_reasoning_item_first_with_its_text_as_summary(name):
    answer = translate(completion({"content": "12,231", name: "27 * 453 = 10,800 + 1,431"}))
    assert answer["output"][0] == {"id": f"rs_{BASE}_0", "type": "reasoning", "summary": [
        {"type": "summary_text", "text": "27 * 453 = 10,800 + 1,431"}]}
    assert answer["output"][1]["id"] == f"msg_{BASE}_1"


def test_a_refusal_is_a_refusal_part():
    [item] = translate(completion({"content": None, "refusal": "I can't help with that."}))["output"]
    assert item["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


def test_an_empty_answer_has_no_output():
    assert translate(completion({"content": ""}))["output"] == []


@pytest.mark.parametrize(
    ("finish", "status", "details"),
    [
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("function_call", "completed", None),
        ("length", "incomplete", {"reason": "max_output_tokens"}),
        ("content_filter", "incomplete", {"reason": "content_filter"}),
        ("something_new", "completed", None),
        (None, "completed", None),
    ],
)
def test_finish_reason_becomes_status_and_incomplete_details(finish, status, details):
    answer = translate(completion({"content": "x"}, finish))
    assert (answer["status"], answer["incomplete_details"]) == (status, details)
    assert ("completed_at" in answer) == (status == "completed")


def test_an_unknown_finish_reason_is_logged(caplog):
    with caplog.at_level(logging.WARNING):
        translate(completion({"content": "x"}, "eos"))
    assert "'eos'" in caplog.text


def test_the_item_a_limit_cut_is_incomplete():
    calls = [function("call_1", "f", "{}"), function("call_2", "g", '{"a": ')]
    output = translate(completion({"content": "x", "tool_calls": calls}, "length"))["output"]
    assert [item["status"] for item in output] == ["completed", "completed", "incomplete"]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 2006, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1920},
          "completion_tokens_details": {"reasoning_tokens": 256}},
         {"input_tokens": 2006, "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
          "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 2306}),
        ({"prompt_tokens": 91, "completion_tokens": 14},
         {"input_tokens": 91, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
          "output_tokens": 14, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 105}),
        (None, None),
    ],
)
def test_usage_counts_as_chat_does(usage, expected):
    assert translate({**completion({"content": "x"}), "usage": usage})["usage"] == expected


def test_ids_derive_from_the_completion_id_or_are_new():
    payload = completion({"content": "x"})
    del payload["id"]
    first, second = translate(payload)["id"], translate(payload)["id"]
    assert first.startswith("resp_") and second.startswith("resp_") and first != second


def test_a_tool_call_without_an_id_gets_a_call_id():
    [item] = translate(completion({"tool_calls": [{"type": "function", "function": {"name": "f"}}]}))["output"]
    assert item["call_id"].startswith("call_") and item["arguments"] == ""


def test_arguments_sent_as_an_object_are_given_as_json_text():
    [item] = translate(completion({"tool_calls": [function("call_1", "f", {"a": 1})]}))["output"]
    assert item["arguments"] == '{"a":1}'


def test_the_request_configuration_is_echoed():
    request = {**CODEX, "instructions": "Be terse.", "temperature": 0.2, "top_p": 0.9, "max_output_tokens": 2000,
               "text": {"format": {"type": "json_object"}}, "reasoning": {"effort": "medium", "summary": "auto"},
               "metadata": {"ticket": "MCPD-42"}, "store": True, "prompt_cache_key": "k-1", "truncation": "auto",
               "safety_identifier": "sha-3f", "tool_choice": {"type": "custom", "name": "apply_patch"}}
    answer = translate(completion({"content": "{}"}), request)
    assert {key: answer[key] for key in ECHO} == {
        **ECHO, "instructions": "Be terse.", "temperature": 0.2, "top_p": 0.9, "max_output_tokens": 2000,
        "text": {"format": {"type": "json_object"}, "verbosity": "medium"},
        "reasoning": {"effort": "medium", "summary": "auto"}, "metadata": {"ticket": "MCPD-42"},
        "prompt_cache_key": "k-1", "truncation": "auto", "safety_identifier": "sha-3f",
        "tool_choice": {"type": "custom", "name": "apply_patch"}, "tools": [SHELL_TOOL, PATCH_TOOL],
        "parallel_tool_calls": False, "store": False}


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
        response_from_chat(payload, model=MODEL, request=REQUEST, provider="vllm")
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    assert "vllm" in caught.value.message


# --- a stream: helpers ---


def relay_for(provider: str = "vllm", request: dict[str, Any] = REQUEST) -> ResponsesFromChat:
    """A relay over the provider adapter's translator, for the chat body to_chat gives a stream."""
    return ResponsesFromChat(ADAPTERS[provider].stream_translator(CHAT_BODY), MODEL, request)


def run(relay: ResponsesFromChat, items: list[SseEvent]) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of every event, as ProxyStream drives a relay: feed until done, then finish."""
    events = []
    for item in items:
        events += relay.feed(item)
        if relay.done:
            break
    if relay.done:
        events += relay.finish()
    return [(event.name, json.loads(event.data)) for event in events]


def replay(name: str, request: dict[str, Any] = REQUEST, provider: str = "vllm") -> list[tuple[str, dict[str, Any]]]:
    return run(relay_for(provider, request), load_events(name))


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


def names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name.removeprefix("response.") for name, _ in events]


TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def assert_well_formed(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Every event is a Responses stream event of the SDK, named by its type, numbered 0, 1, …; created and
    in_progress come first and exactly one terminal event last; items are open one at a time, with
    output_index 0, 1, …, and nothing refers to an item that is not open (WIRE-FORMATS §4.3)."""
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert names(events)[:2] == ["created", "in_progress"]
    assert [name for name, _ in events if name in TERMINAL] == [events[-1][0]]
    open_item, next_index = None, 0
    for name, data in events:
        assert name == data["type"]
        _EVENT.validate_python(data)
        if name == "response.output_item.added":
            assert open_item is None and data["output_index"] == next_index
            open_item, next_index = data["item"]["id"], next_index + 1
        elif name == "response.output_item.done":
            assert data["item"]["id"] == open_item and data["output_index"] == next_index - 1
            open_item = None
        elif "item_id" in data:
            assert data["item_id"] == open_item and data["output_index"] == next_index - 1
        elif name in TERMINAL:
            assert open_item is None or name == "response.failed"
    done = [data["item"]["id"] for name, data in events if name == "response.output_item.done"]
    assert [item["id"] for item in events[-1][1]["response"]["output"]] == done


# --- a stream: the recordings, event by event ---

RESP = "resp_BcQ8ko2nz9B7CRvV0uVbcowidHpQU"
MSG = "msg_BcQ8ko2nz9B7CRvV0uVbcowidHpQU_0"


def begun(base: str, created: int, request: dict[str, Any] = REQUEST) -> dict[str, Any]:
    return {"id": f"resp_{base}", "object": "response", "created_at": created, "status": "in_progress",
            "error": None, "incomplete_details": None, "model": MODEL, "output": [], "usage": None,
            **ECHO, "tools": request.get("tools", []), "tool_choice": request.get("tool_choice", "auto"),
            "parallel_tool_calls": request.get("parallel_tool_calls", True)}


def test_a_text_stream_is_the_documented_event_sequence():
    events = replay("chat_text.sse")
    text = "Hello! How can I help you today?"
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    where = {"item_id": MSG, "output_index": 0, "content_index": 0}
    item = {"id": MSG, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    usage = {"input_tokens": 2006, "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
             "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2018}
    created = begun("BcQ8ko2nz9B7CRvV0uVbcowidHpQU", 1748496646)
    assert [(name, {key: value for key, value in data.items() if key not in ("type", "sequence_number")})
            for name, data in events] == [
        ("response.created", {"response": created}),
        ("response.in_progress", {"response": created}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}}),
        ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
        ("response.output_text.delta", {**where, "delta": "Hello", "logprobs": []}),
        ("response.output_text.delta", {**where, "delta": "! How can I", "logprobs": []}),
        ("response.output_text.delta", {**where, "delta": " help you today?", "logprobs": []}),
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": {**created, "status": "completed", "completed_at": 1748496646,
                                             "output": [item], "usage": usage}}),
    ]
    assert_well_formed(events)


def test_reasoning_then_text_is_a_reasoning_item_then_a_message():
    events = replay("chat_reasoning.sse")
    assert names(events) == [
        "created", "in_progress",
        "output_item.added", "reasoning_summary_part.added", "reasoning_summary_text.delta",
        "reasoning_summary_text.delta", "reasoning_summary_text.done", "reasoning_summary_part.done",
        "output_item.done",
        "output_item.added", "content_part.added", "output_text.delta", "output_text.delta", "output_text.done",
        "content_part.done", "output_item.done",
        "completed",
    ]
    reasoning = events[8][1]["item"]
    assert reasoning == {"id": "rs_9f3a1c2e-6b7d-4e8f-a1b2-c3d4e5f60718_0", "type": "reasoning", "summary": [
        {"type": "summary_text", "text": "27 * 453: 453 = 400 + 50 + 3; 10,800 + 1,350 + 81 = 12,231."}]}
    assert events[-1][1]["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 80}
    assert_well_formed(events)


def test_a_function_call_and_a_custom_tool_call_stream_their_arguments_and_input():
    events = replay("chat_codex_tools.sse", CODEX)
    assert names(events) == [
        "created", "in_progress",
        "output_item.added", "content_part.added", "output_text.delta", "output_text.delta", "output_text.done",
        "content_part.done", "output_item.done",
        "output_item.added", "function_call_arguments.delta", "function_call_arguments.delta",
        "function_call_arguments.delta", "function_call_arguments.done", "output_item.done",
        "output_item.added", *["custom_tool_call_input.delta"] * 5, "custom_tool_call_input.done", "output_item.done",
        "completed",
    ]
    patch = '*** Begin Patch\n*** Update File: app/add.py\n@@\n def add(a, b):\n-    return a + b + 1\n+    return a + b  # café "fixed"\n*** End Patch\n'
    # Each delta is the input decoded so far; an escape split between fragments waits for its end.
    assert [data["delta"] for name, data in events if name == "response.custom_tool_call_input.delta"] == [
        "*** Begin Patch", "\n*** Update File: app/add.py\n@@\n def add(a, b):\n-    return a + b + 1\n+    return a + b  # caf",
        "é ", '"fixed"\n*** ', "End Patch\n"]
    assert events[-3][1]["input"] == patch
    assert events[15][1]["item"] == {"id": "ctc_5f1c2a9b7e3d4c60_2", "type": "custom_tool_call",
                                     "status": "in_progress", "call_id": "chatcmpl-tool-91bc", "name": "apply_patch",
                                     "input": ""}
    assert_well_formed(events)


def test_a_length_cut_off_ends_with_response_incomplete():
    events = replay("chat_length.sse")
    name, data = events[-1]
    assert name == "response.incomplete"
    assert (data["response"]["status"], data["response"]["incomplete_details"]) == (
        "incomplete", {"reason": "max_output_tokens"})
    assert data["response"]["output"][0]["status"] == "incomplete"
    assert events[-2][1]["item"]["status"] == "incomplete"
    assert data["response"]["usage"]["total_tokens"] == 428
    assert_well_formed(events)


def test_without_a_usage_chunk_the_end_comes_at_the_providers_end():
    relay = relay_for("ollama")
    items = load_events("chat_no_usage.sse")
    events = [(e.name, json.loads(e.data)) for item in items[:-1] for e in relay.feed(item)]
    assert events[-1][0] == "response.output_item.done"  # the finish_reason closed the item; the end waits
    assert not relay.done
    [(name, data)] = run(relay, items[-1:])
    assert (name, data["response"]["usage"]) == ("response.incomplete", None)
    assert relay.done and relay.finish() == []


def test_claudes_thinking_through_the_anthropic_adapter_is_a_reasoning_item():
    events = replay("anthropic_thinking.sse", provider="anthropic")
    final = events[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"][0]["text"].startswith("Let me solve this step by step")
    assert_well_formed(events)


# --- a stream: what the official openai SDK makes of it ---


def sdk_read(events: list[tuple[str, dict[str, Any]]], request: dict[str, Any] = REQUEST) -> tuple[list[Any], Any]:
    """The SDK's events and the final Response (the terminal event's) that openai-python's Responses stream
    accumulator makes of these events, framed as mcpd's web layer frames them (mcpd.http.sse_frame) and read
    over HTTP by the SDK's own client."""
    body = b"".join(sse_frame(Event(name=name, data=json.dumps(data).encode())) for name, data in events)

    def reply(request_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = openai.OpenAI(api_key="sk-FAKE", base_url="http://mcpd.test/v1", max_retries=0,
                           http_client=httpx.Client(transport=httpx.MockTransport(reply)))
    with client.responses.stream(model=MODEL, input="Hi", tools=request.get("tools", [])) as stream:
        seen = list(stream)
    terminal = seen[-1]
    assert terminal.type in TERMINAL
    if terminal.type == "response.completed":
        assert stream.get_final_response() == terminal.response
    return seen, terminal.response


def summary(final: Any) -> dict[str, Any]:
    """What a client takes from a Response: its text, calls, custom calls, status and usage."""
    return {
        "output_text": final.output_text,
        "calls": [(item.name, item.call_id, item.arguments) for item in final.output if item.type == "function_call"],
        "custom": [(item.name, item.call_id, item.input) for item in final.output if item.type == "custom_tool_call"],
        "status": final.status,
        "usage": final.usage and final.usage.model_dump(),
    }


def usage(prompt: int, completion_tokens: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion_tokens}


PATCH = '*** Begin Patch\n*** Update File: app/add.py\n@@\n def add(a, b):\n-    return a + b + 1\n+    return a + b  # café "fixed"\n*** End Patch\n'


@pytest.mark.parametrize(
    ("name", "request_", "provider", "expected"),
    [
        ("chat_text.sse", REQUEST, "vllm", {"output_text": "Hello! How can I help you today?", "calls": [],
                                            "custom": [], "status": "completed", "usage": usage(2006, 12, 1920)}),
        ("chat_weather.sse", REQUEST, "vllm", {
            "output_text": "Let me check the weather.",
            "calls": [("get_weather", "call_9oOUGn7XVM1S9AdJeglwUv1Z", '{"location": "Boston"}')],
            "custom": [], "status": "completed", "usage": usage(91, 30)}),
        ("chat_reasoning.sse", REQUEST, "deepseek", {"output_text": "27 * 453 = 12,231", "calls": [], "custom": [],
                                                     "status": "completed", "usage": usage(18, 96, 0, 80)}),
        ("chat_parallel_tools.sse", REQUEST, "openai", {
            "output_text": "Okay, let's check both cities.",
            "calls": [("get_current_weather", "call_9oOUGn7XVM1S9AdJeglwUv1Z", '{"location": "Boston, MA"}'),
                      ("get_current_weather", "call_2kT8wQmZ5rYx1VbN3cLp7D4e",
                       '{"location": "Paris, FR", "unit": "celsius"}')],
            "custom": [], "status": "completed", "usage": usage(1391, 58, 1024)}),
        ("chat_codex_tools.sse", CODEX, "vllm", {
            "output_text": "Running the tests, then the fix.",
            "calls": [("shell_command", "chatcmpl-tool-8a3f", '{"command":"make test","workdir":"/home/dev/app"}')],
            "custom": [("apply_patch", "chatcmpl-tool-91bc", PATCH)], "status": "completed",
            "usage": usage(5120, 143, 4096)}),
        ("chat_length.sse", REQUEST, "vllm", {"output_text": "Here is the plan:\n1. Read the failing test\n2. Fix",
                                              "calls": [], "custom": [], "status": "incomplete",
                                              "usage": usage(412, 16)}),
        ("chat_no_usage.sse", REQUEST, "ollama", {"output_text": "The sky is blue.", "calls": [], "custom": [],
                                                  "status": "incomplete", "usage": None}),
    ],
)
def test_the_openai_sdk_accumulates_the_stream_into_the_answer(name, request_, provider, expected):
    seen, final = sdk_read(replay(name, request_, provider), request_)
    assert summary(final) == expected
    assert final.model == MODEL and final.id.startswith("resp_")
    # The SDK's own running snapshots (built from the deltas alone) end as the final answer says.
    texts = [event.snapshot for event in seen if event.type == "response.output_text.delta"]
    assert (texts[-1] if texts else "") == final.output_text
    for item in final.output:
        if item.type == "function_call":
            deltas = [event.snapshot for event in seen
                      if event.type == "response.function_call_arguments.delta" and event.item_id == item.id]
            assert deltas[-1] == item.arguments
        if item.type == "custom_tool_call":
            assert "".join(event.delta for event in seen if event.type == "response.custom_tool_call_input.delta"
                           and event.item_id == item.id) == item.input


@pytest.mark.parametrize("name", ["chat_weather.sse", "chat_text.sse", "chat_reasoning.sse",
                                  "chat_parallel_tools.sse", "chat_codex_tools.sse", "chat_length.sse"])
def test_the_stream_and_the_whole_answer_agree(name):
    """The recording accumulated as a chat.completion, through response_from_chat, is the Response the
    stream ends with."""
    items = [json.loads(item.data) for item in load_events(name) if item.data != "[DONE]"]
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish, chat_usage, calls = None, None, {}
    for item in items:
        chat_usage = item.get("usage") or chat_usage
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
    whole = translate({"id": items[0]["id"], "created": items[0]["created"], "usage": chat_usage,
                       "choices": [{"index": 0, "message": message, "finish_reason": finish}]}, CODEX)
    assert replay(name, CODEX)[-1][1]["response"] == whole


# --- a stream: items, one at a time ---


def item_events(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    """The item-level story: (added/done, item type and payload)."""
    story = []
    for name, data in events:
        if name in ("response.output_item.added", "response.output_item.done"):
            item = data["item"]
            payload = item.get("arguments", item.get("input", item.get("summary", item.get("content"))))
            story.append((name.rsplit(".", 1)[1], item["type"], payload))
    return story


def test_interleaved_call_fragments_wait_for_their_item():
    """A server that sends every call's header first, then the arguments: the second call's item starts
    only once the first call's arguments are whole, and no fragment is lost."""
    events = run(relay_for(), [
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
    assert item_events(events) == [
        ("added", "function_call", ""), ("done", "function_call", '{"city": "Paris"}'),
        ("added", "function_call", ""), ("done", "function_call", '{"zone": "CET"}')]
    assert_well_formed(events)
    assert summary(sdk_read(events)[1])["calls"] == [("get_weather", "call_A", '{"city": "Paris"}'),
                                                     ("get_time", "call_B", '{"zone": "CET"}')]


def test_text_after_an_incomplete_call_waits_for_the_call():
    events = run(relay_for(), [
        chunk({"tool_calls": [call(0, "{\"q\": ", "call_A", "search")]}),
        chunk({"content": "Searching"}),
        chunk({"tool_calls": [call(0, "\"mcpd\"}")]}),
        chunk({"content": " now."}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    assert item_events(events) == [
        ("added", "function_call", ""), ("done", "function_call", '{"q": "mcpd"}'),
        ("added", "message", []),
        ("done", "message", [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Searching now."}])]
    assert_well_formed(events)


def test_a_fragment_for_a_call_whose_item_is_done_is_dropped_and_logged(caplog):
    with caplog.at_level(logging.WARNING):
        events = run(relay_for(), [
            chunk({"tool_calls": [call(0, "{}", "call_A", "f")]}),
            chunk({"tool_calls": [call(1, "{}", "call_B", "g")]}),
            chunk({"tool_calls": [call(0, " ")]}),
            chunk({}, "tool_calls"),
            DONE,
        ])
    assert [data["delta"] for name, data in events if name.endswith("arguments.delta")] == ["{}", "{}"]
    assert "dropped" in caplog.text
    assert_well_formed(events)


def test_a_call_whose_arguments_never_complete_is_closed_by_the_finish_reason():
    events = run(relay_for(), [
        chunk({"tool_calls": [call(0, "{\"path\": \"/tm", "call_A", "read")]}),
        chunk({"content": "cut"}),
        chunk({}, "length"),
        DONE,
    ])
    assert [(kind, item_type) for kind, item_type, _ in item_events(events)] == [
        ("added", "function_call"), ("done", "function_call"), ("added", "message"), ("done", "message")]
    assert events[-1][0] == "response.incomplete"
    assert_well_formed(events)


def test_a_call_without_an_id_or_an_index_gets_them():
    events = run(relay_for(), [
        chunk({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"function": {"name": "g", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    added = [data["item"] for name, data in events if name == "response.output_item.added"]
    assert [item["name"] for item in added] == ["f", "g"]
    assert all(item["call_id"].startswith("call_") for item in added)
    assert_well_formed(events)


def test_a_call_waits_for_its_name():
    events = run(relay_for(), [
        chunk({"tool_calls": [{"index": 0, "id": "call_A", "function": {"arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        DONE,
    ])
    assert events[2][1]["item"]["name"] == "f"
    assert_well_formed(events)


def test_reasoning_after_text_opens_a_new_item():
    events = run(relay_for(), [chunk({"content": "First."}), chunk({"reasoning": "Hmm."}),
                               chunk({"content": "Second."}), chunk({}, "stop"), DONE])
    assert [item_type for kind, item_type, _ in item_events(events) if kind == "added"] == [
        "message", "reasoning", "message"]
    assert_well_formed(events)


def test_text_and_refusal_are_parts_of_one_message():
    events = run(relay_for(), [chunk({"content": "I can tell you"}), chunk({"refusal": " but not that."}),
                               chunk({}, "stop"), DONE])
    assert item_events(events)[-1] == ("done", "message", [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "I can tell you"},
        {"type": "refusal", "refusal": " but not that."}])
    assert [name for name, _ in events if "refusal" in name] == ["response.refusal.delta", "response.refusal.done"]
    assert_well_formed(events)


def test_a_delta_with_reasoning_under_both_names_counts_once():
    events = run(relay_for(), [chunk({"reasoning_content": "Hmm.", "reasoning": "Hmm."}), chunk({}, "stop"), DONE])
    assert [data["delta"] for name, data in events if name.endswith("summary_text.delta")] == ["Hmm."]


def test_an_empty_answer_has_no_items():
    events = run(relay_for(), [chunk({"role": "assistant", "content": ""}), chunk({}, "stop"), usage_chunk(5, 1)])
    assert names(events) == ["created", "in_progress", "completed"]
    assert events[-1][1]["response"]["output"] == []


def test_content_in_the_finish_reason_chunk_comes_before_the_end():
    events = run(relay_for(), [chunk({"content": "Bye"}, "stop"), DONE])
    assert [data["delta"] for name, data in events if name.endswith("output_text.delta")] == ["Bye"]
    assert events[-1][0] == "response.completed"


# --- a stream: its end, errors, keep-alive ---


def test_a_provider_end_without_a_finish_reason_is_not_done():
    """ProxyStream then answers with fail() rather than an invented end."""
    relay = relay_for()
    events = run(relay, [chunk({"content": "Hel"}), DONE])
    assert not relay.done and events[-1][0] == "response.output_text.delta"


def test_the_terminal_event_makes_the_relay_done_before_the_providers_end():
    relay = relay_for()
    run(relay, [chunk({"content": "Hi"}), chunk({}, "stop"), usage_chunk(3, 1)])
    assert relay.done and relay.finish() == [] and relay.feed(DONE) == []


def test_usage_is_the_provider_translators():
    relay = relay_for("openai")
    run(relay, load_events("chat_parallel_tools.sse"))
    assert relay.usage == Usage(prompt_tokens=1391, completion_tokens=58, cache_read_tokens=1024)


class DictTranslator:
    """A provider translator that hands back chunks as dicts (the anthropic adapter's kind)."""

    def __init__(self, chunks: list[Any]):
        self._chunks, self.usage, self.done = chunks, Usage(), False

    def feed(self, event: SseEvent) -> list[Any]:
        self.done = True
        return self._chunks

    def finish(self) -> list[Any]:
        return []


def test_chunks_given_as_dicts_are_read_too():
    relay = ResponsesFromChat(DictTranslator([{"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"},
                                                                       "finish_reason": "stop"}]}]), MODEL, REQUEST)
    events = run(relay, [DONE])
    assert events[0][1]["response"]["id"] == "resp_x" and events[-1][0] == "response.completed"


def test_a_provider_error_event_is_raised_for_proxy_stream_to_report():
    relay = relay_for()
    relay.feed(chunk({"content": "Hi"}))
    error = SseEvent(event="message", data=json.dumps({"error": {"message": "overloaded", "type": "server_error"}}))
    with pytest.raises(UpstreamError):
        relay.feed(error)


@pytest.mark.parametrize("data", ["not json", "[1, 2]"])
def test_a_chunk_that_is_not_a_json_object_is_a_bad_response(data):
    with pytest.raises(UpstreamError) as caught:
        ResponsesFromChat(DictTranslator([data]), MODEL, REQUEST).feed(DONE)
    assert caught.value.code == "upstream_bad_response"


def test_a_failure_mid_stream_is_an_error_event_then_response_failed_with_the_items_done():
    relay = relay_for()
    events = run(relay, [chunk({"tool_calls": [call(0, "{}", "call_A", "f")]}), chunk({"content": "Then"})])
    error = UpstreamError("The provider ended the stream before it was complete.", code="upstream_stream_incomplete")
    events += [(e.name, json.loads(e.data)) for e in relay.fail(error)]
    sequence = events[-2][1]["sequence_number"]
    assert events[-2] == ("error", {"type": "error", "sequence_number": sequence, "code": "upstream_stream_incomplete",
                                    "message": error.message, "param": None})
    name, data = events[-1]
    assert (name, data["response"]["status"], data["response"]["error"]) == (
        "response.failed", "failed", {"code": "server_error", "message": error.message})
    assert [item["call_id"] for item in data["response"]["output"]] == ["call_A"]
    assert_well_formed(events)
    assert relay.done


def test_a_failure_after_the_terminal_event_sends_nothing_more():
    relay = relay_for()
    run(relay, [chunk({"content": "Hi"}, "stop"), usage_chunk(3, 1)])
    assert relay.done and relay.fail(InternalError("mcpd failed.")) == []


def test_a_failure_before_anything_came_still_begins_the_response():
    events = [(e.name, json.loads(e.data)) for e in relay_for().fail(InternalError("mcpd failed."))]
    assert names(events) == ["created", "in_progress", "error", "failed"]
    assert_well_formed(events)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimited("Rate limit reached.", retry_after="20"),
         {"code": "rate_limit_exceeded", "message": "Rate limit reached. Please try again in 20s."}),
        (RateLimited("Rate limit reached."), {"code": "rate_limit_exceeded", "message": "Rate limit reached."}),
        (UpstreamError("down"), {"code": "server_error", "message": "down"}),
        (InvalidRequest("context too long"), {"code": "server_error", "message": "context too long"}),
    ],
)
def test_a_failed_responses_error_code_is_one_openai_defines(error, expected):
    *_, failed = relay_for().fail(error)
    assert json.loads(failed.data)["response"]["error"] == expected


def test_the_openai_sdk_reads_the_error_event_and_response_failed():
    relay = relay_for()
    events = run(relay, [chunk({"content": "The answer is"})])
    events += [(e.name, json.loads(e.data)) for e in relay.fail(RateLimited("slow down", retry_after="3"))]
    seen, final = sdk_read(events)
    error = next(event for event in seen if event.type == "error")
    assert (error.code, error.message) == ("rate_limit_error", "slow down")
    assert (final.status, final.error.code, final.error.message) == (
        "failed", "rate_limit_exceeded", "slow down Please try again in 3s.")


def test_keepalive_is_an_sse_comment():
    event = relay_for().keepalive()
    assert (event.kind, event.data) == ("comment", b"keep-alive")


# --- the custom tool input decoder ---


@pytest.mark.parametrize(
    ("pieces", "decoded"),
    [
        (['{"input": "a\\', 'nb"}'], ["a", "\nb"]),
        (['{ "input" :', ' "x\\u00', 'e9\\ud83d', '\\ude00"}'], ["", "x", "é", "😀"]),
        (['{"in', 'put": ""}'], ["", ""]),
    ],
)
def test_the_input_decoder_gives_whole_characters_as_they_come(pieces, decoded):
    decoder = InputDecoder()
    assert [decoder.feed(piece) for piece in pieces] == decoded


@pytest.mark.parametrize("text", ['{"patch": "x"}', "*** Begin Patch", '["input"]'])
def test_the_input_decoder_stops_at_anything_but_the_input_object(text):
    decoder = InputDecoder()
    assert decoder.feed(text) == "" and not decoder.matched


def test_custom_input_takes_the_parsed_input_first():
    assert custom_input('{"input": "x", "other": 1}') == "x"


# --- purity ---


def test_the_responses_translation_imports_no_django_drf_or_requests():
    code = ("import sys, llms.inbound.responses.to_chat, llms.inbound.responses.from_chat; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'requests', 'urllib3'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Tools for sub-agents.",
          "tools": [{"type": "function", "name": "close_agent", "parameters": {"type": "object"}},
                    {**PATCH_TOOL, "name": "patch_agent"}]}


def test_a_call_of_a_namespaces_tool_names_the_tool_and_its_namespace():
    request = {**REQUEST, "stream": False, "tools": [AGENTS]}
    calls = [function("call_1", "multi_agent_v1__close_agent", '{"target":"a1"}'),
             function("call_2", "multi_agent_v1__patch_agent", '{"input":"*** Begin Patch"}')]
    output = translate(completion({"content": None, "tool_calls": calls}, "tool_calls"), request)["output"]
    assert [(item["type"], item["name"], item["namespace"]) for item in output] == [
        ("function_call", "close_agent", "multi_agent_v1"), ("custom_tool_call", "patch_agent", "multi_agent_v1")]
    assert output[1]["input"] == "*** Begin Patch"


def test_a_streamed_call_of_a_namespaces_tool_names_the_tool_and_its_namespace():
    relay = relay_for(request={**REQUEST, "tools": [AGENTS]})
    events = run(relay, [chunk({"role": "assistant"}),
                         chunk({"tool_calls": [call(0, '{"target":', "call_9", "multi_agent_v1__close_agent")]}),
                         chunk({"tool_calls": [call(0, '"a1"}')]}), chunk({}, "tool_calls"), usage_chunk(5, 3), DONE])
    assert_well_formed(events)
    added = next(data["item"] for name, data in events if name == "response.output_item.added")
    done = next(data for name, data in events if name == "response.function_call_arguments.done")
    final = events[-1][1]["response"]["output"][0]
    assert (added["name"], added["namespace"], done["name"]) == ("close_agent", "multi_agent_v1", "close_agent")
    assert (final["name"], final["namespace"], final["arguments"]) == ("close_agent", "multi_agent_v1", '{"target":"a1"}')
