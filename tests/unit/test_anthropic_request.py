"""OpenAI chat.completions body -> Anthropic Messages request: pure translation, no DB, no HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import BaseModel, TypeAdapter

from llms.adapters.anthropic import AnthropicAdapter
from llms.adapters.anthropic.request import IGNORED, REFUSED
from llms.adapters.anthropic.tools import RESPONSE_TOOL
from llms.adapters.base import Target
from mcpd.errors import InvalidRequest

TARGET = Target(base_url="https://api.anthropic.com/v1", model="claude-sonnet-4-5", api_key="sk-ant-FAKE")
HI = {"role": "user", "content": "Hi"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
        "strict": True,
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}

_NON_STREAMING = TypeAdapter(MessageCreateParamsNonStreaming)
_STREAMING = TypeAdapter(MessageCreateParamsStreaming)


def _plain(value: Any) -> Any:
    """A validated SDK value as plain JSON data (draining pydantic's lazy Iterable validators)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(exclude_unset=True))
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


def assert_valid_for_anthropic_sdk(payload: dict[str, Any]) -> None:
    """The body validates as the anthropic SDK's MessageCreateParams, every key known to it."""
    adapter = _STREAMING if payload.get("stream") else _NON_STREAMING
    # TypedDict validation drops unknown keys, so equality also proves no key is unknown to the SDK.
    assert _plain(adapter.validate_python(payload)) == payload


def build(body: dict[str, Any], target: Target = TARGET) -> dict[str, Any]:
    """The upstream JSON for a client body, checked against the anthropic SDK's request types."""
    payload = AnthropicAdapter().build_request(target, body).json
    assert_valid_for_anthropic_sdk(payload)
    return payload


def refused(body: dict[str, Any], target: Target = TARGET) -> str:
    """The message of the 400 a body gets."""
    with pytest.raises(InvalidRequest) as caught:
        AnthropicAdapter().build_request(target, body)
    assert caught.value.status == 400
    return caught.value.message


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "high"}}


# --- the HTTP request ---


def test_it_posts_to_messages_with_anthropic_headers():
    target = Target(
        base_url="https://api.anthropic.com/v1/", model="claude-sonnet-4-5", api_key="sk-ant-FAKE"
    )
    request = AnthropicAdapter().build_request(target, {"messages": [HI]})
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers == {
        "x-api-key": "sk-ant-FAKE",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }


def test_it_sends_no_key_header_without_a_key():
    target = Target(base_url="http://127.0.0.1:8080/v1", model="claude-x")
    request = AnthropicAdapter().build_request(target, {"messages": [HI]})
    assert request.url == "http://127.0.0.1:8080/v1/messages"
    assert "x-api-key" not in request.headers


def test_it_maps_a_plain_conversation_with_system_and_developer_messages():
    body = {
        "model": "whatever-the-client-says",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "developer", "content": [text("Answer in French."), text("   ")]},
            {"role": "user", "content": [text("How are you?")]},
        ],
    }
    assert build(body) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
        "messages": [
            {"role": "user", "content": [text("Hi")]},
            {"role": "assistant", "content": [text("Hello.")]},
            {"role": "user", "content": [text("How are you?")]},
        ],
    }


def test_it_streams_upstream_when_the_client_streams():
    payload = build({"messages": [HI], "stream": True, "stream_options": {"include_usage": True}})
    assert payload["stream"] is True
    assert "stream_options" not in payload
    assert "stream" not in build({"messages": [HI], "stream": False})


# --- sampling parameters ---


@pytest.mark.parametrize(
    ("fields", "default", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 50}, 2000, 100),
        ({"max_tokens": 50}, 2000, 50),
        ({}, 2000, 2000),
        ({}, None, 4096),
    ],
)
def test_max_tokens_comes_from_the_client_then_the_llm_then_4096(fields, default, expected):
    target = Target(base_url="https://api.anthropic.com/v1", model="claude-x", default_max_tokens=default)
    assert build({"messages": [HI], **fields}, target)["max_tokens"] == expected


@pytest.mark.parametrize("value", [0, -1, 1.5, "100", True])
def test_a_bad_max_tokens_is_a_400(value):
    assert "max_tokens" in refused({"messages": [HI], "max_tokens": value})


@pytest.mark.parametrize(("given", "sent"), [(0, 0), (0.3, 0.3), (1, 1), (1.7, 1.0), (2, 1.0)])
def test_temperature_is_clamped_to_one(given, sent):
    assert build({"messages": [HI], "temperature": given})["temperature"] == sent


@pytest.mark.parametrize(
    ("name", "value"),
    [("temperature", 2.5), ("temperature", -0.1), ("top_p", 1.5), ("top_k", -1), ("temperature", "hot")],
)
def test_out_of_range_sampling_values_are_a_400(name, value):
    assert name in refused({"messages": [HI], name: value})


def test_it_maps_top_p_top_k_stop_and_user():
    payload = build({"messages": [HI], "top_p": 0.9, "top_k": 40, "stop": ["END", "###"], "user": "user-42"})
    assert {key: payload[key] for key in ("top_p", "top_k", "stop_sequences", "metadata")} == {
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END", "###"],
        "metadata": {"user_id": "user-42"},
    }


def test_a_single_stop_string_becomes_a_list_and_an_empty_one_is_omitted():
    assert build({"messages": [HI], "stop": "END"})["stop_sequences"] == ["END"]
    assert "stop_sequences" not in build({"messages": [HI], "stop": []})
    assert "stop_sequences" not in build({"messages": [HI], "stop": None})


def test_a_whitespace_stop_sequence_is_refused_rather_than_dropped():
    assert "stop" in refused({"messages": [HI], "stop": ["\n"]})


def test_safety_identifier_stands_in_for_user():
    assert build({"messages": [HI], "safety_identifier": "hash-1"})["metadata"] == {"user_id": "hash-1"}


def test_thinking_is_passed_on_as_an_anthropic_extension():
    thinking = {"type": "enabled", "budget_tokens": 2048}
    assert build({"messages": [HI], "thinking": thinking, "max_tokens": 8000})["thinking"] == thinking


# --- fields that cannot be honoured, ignored fields, unknown fields ---


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("presence_penalty", 0.5),
        ("frequency_penalty", -1),
        ("seed", 7),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("reasoning_effort", "high"),
        ("verbosity", "low"),
        ("web_search_options", {}),
        ("functions", [{"name": "f", "parameters": {}}]),
        ("function_call", "auto"),
    ],
)
def test_a_field_that_would_change_the_answer_is_a_400_naming_it(name, value):
    assert name in refused({"messages": [HI], name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 1),
        ("logprobs", False),
        ("top_logprobs", 0),
        ("logit_bias", {}),
        ("presence_penalty", 0),
        ("frequency_penalty", 0.0),
        ("seed", None),
        ("modalities", ["text"]),
        ("functions", []),
    ],
)
def test_a_refusable_field_at_its_neutral_value_is_accepted_and_not_sent(name, value):
    assert build({"messages": [HI], name: value}) == build({"messages": [HI]})


def test_ignored_fields_are_accepted_and_not_sent():
    body = {
        "messages": [HI],
        "model": "gpt-4o",
        "store": True,
        "metadata": {"team": "a"},
        "service_tier": "flex",
        "prediction": {"type": "content", "content": "x"},
        "prompt_cache_key": "k",
        "prompt_cache_retention": "24h",
    }
    assert set(body) - {"messages"} == set(IGNORED)
    assert build(body) == build({"messages": [HI]})


def test_an_unknown_field_is_a_400_naming_it():
    assert "frobnicate" in refused({"messages": [HI], "frobnicate": 1})


def test_the_field_lists_do_not_overlap():
    assert not set(IGNORED) & set(REFUSED)


# --- content: text and images ---


def test_empty_and_whitespace_text_is_never_sent():
    body = {
        "messages": [
            {"role": "system", "content": ""},
            user(text(""), text("  \n"), text("Hi")),
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "   "},
            {"role": "assistant", "content": [text("Hello"), text(" ")]},
            {"role": "user", "content": "Bye"},
        ]
    }
    # The empty assistant and user turns are omitted; nothing else changes.
    assert build(body) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [
            {"role": "user", "content": [text("Hi")]},
            {"role": "assistant", "content": [text("Hello")]},
            {"role": "user", "content": [text("Bye")]},
        ],
    }


def test_a_conversation_with_nothing_to_send_is_a_400():
    assert "messages" in refused(
        {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": ""}]}
    )


@pytest.mark.parametrize(
    ("url", "source"),
    [
        (f"data:image/png;base64,{PNG}", {"type": "base64", "media_type": "image/png", "data": PNG}),
        (f"data:image/jpeg;base64,{PNG}", {"type": "base64", "media_type": "image/jpeg", "data": PNG}),
        (f"data:image/jpg;base64,{PNG}", {"type": "base64", "media_type": "image/jpeg", "data": PNG}),
        (f"data:IMAGE/WEBP;base64,{PNG}", {"type": "base64", "media_type": "image/webp", "data": PNG}),
        ("https://example.com/cat.jpg", {"type": "url", "url": "https://example.com/cat.jpg"}),
        ("http://example.com/cat.gif", {"type": "url", "url": "http://example.com/cat.gif"}),
    ],
)
def test_image_parts_become_image_blocks(url, source):
    payload = build({"messages": [user(text("What is this?"), image(url))]})
    assert payload["messages"] == [
        {"role": "user", "content": [text("What is this?"), {"type": "image", "source": source}]}
    ]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"data:image/bmp;base64,{PNG}", "image/bmp"),
        (f"data:image/svg+xml;base64,{PNG}", "image/svg+xml"),
        ("data:image/png,not-base64-marked", "base64"),
        ("data:image/png;base64,@@not base64@@", "base64"),
        ("ftp://example.com/cat.png", "http"),
    ],
)
def test_an_image_anthropic_cannot_take_is_a_400_naming_the_part(url, words):
    message = refused({"messages": [user(text("What is this?"), image(url))]})
    assert "messages[0].content[1].image_url.url" in message
    assert words in message


def test_an_audio_part_is_a_400():
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert "messages[0].content[0].type" in refused({"messages": [user(part)]})


# --- tool conversations ---


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_parallel_tool_conversation_round_trips():
    body = {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [
                    _call("toolu_A", "get_weather", '{"location": "Paris"}'),
                    _call("toolu_B", "get_weather", '{"location": "Tokyo"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_A", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_B", "content": [text("25C,"), text(" sunny")]},
            {"role": "user", "content": "And tomorrow?"},
            {"role": "assistant", "content": None, "tool_calls": [_call("toolu_C", "get_weather", "{}")]},
            {"role": "tool", "tool_call_id": "toolu_C", "content": ""},
        ],
    }
    assert build(body)["messages"] == [
        {"role": "user", "content": [text("Weather in Paris and Tokyo?")]},
        {
            "role": "assistant",
            "content": [
                text("Let me check both."),
                {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"location": "Tokyo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_A", "content": "18C, cloudy"},
                {"type": "tool_result", "tool_use_id": "toolu_B", "content": [text("25C,"), text(" sunny")]},
                text("And tomorrow?"),
            ],
        },
        # Only tool calls: no text block at all.
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_C", "name": "get_weather", "input": {}}],
        },
        # An empty result carries no content rather than an empty text block.
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_C"}]},
    ]


def test_empty_arguments_mean_an_empty_input():
    body = {
        "messages": [
            HI,
            {"role": "assistant", "tool_calls": [_call("toolu_A", "get_time", "")]},
            {"role": "tool", "tool_call_id": "toolu_A", "content": "noon"},
        ]
    }
    assert build(body)["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_A", "name": "get_time", "input": {}}
    ]


@pytest.mark.parametrize("arguments", ['{"location": "Par', "[1, 2]", "null"])
def test_unparsable_or_non_object_arguments_are_a_400_naming_the_call(arguments):
    body = {
        "messages": [HI, {"role": "assistant", "tool_calls": [_call("toolu_BAD", "get_weather", arguments)]}]
    }
    message = refused(body)
    assert "messages[1].tool_calls[0]" in message
    assert "toolu_BAD" in message


def test_a_tool_message_answering_no_call_is_a_400():
    body = {
        "messages": [
            HI,
            {"role": "assistant", "tool_calls": [_call("toolu_A", "get_time", "{}")]},
            {"role": "tool", "tool_call_id": "toolu_Z", "content": "noon"},
        ]
    }
    assert "messages[2].tool_call_id" in refused(body)


def test_a_legacy_function_message_is_a_400():
    assert "messages[1].role" in refused(
        {"messages": [HI, {"role": "function", "name": "f", "content": "x"}]}
    )


# --- tools and tool_choice ---


def test_tools_become_anthropic_tool_definitions():
    payload = build({"messages": [HI], "tools": [WEATHER_TOOL, TIME_TOOL]})
    assert payload["tools"] == [
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in payload


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            False,
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls_map(choice, parallel, expected):
    body = {
        "messages": [HI],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
    }
    assert build(body)["tool_choice"] == expected


def test_tool_choice_auto_or_none_without_tools_sends_nothing():
    for choice in ("auto", "none"):
        payload = build({"messages": [HI], "tool_choice": choice, "parallel_tool_calls": False})
        assert "tools" not in payload and "tool_choice" not in payload


@pytest.mark.parametrize(
    "body",
    [
        {"tool_choice": "required"},
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"tools": [WEATHER_TOOL], "tool_choice": "sometimes"},
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
    ],
)
def test_an_impossible_tool_choice_is_a_400(body):
    assert "tool_choice" in refused({"messages": [HI], **body})


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "custom", "custom": {"name": "grammar"}},
        {"type": "function", "function": {"name": RESPONSE_TOOL}},
        {"type": "function", "function": {"name": "f", "parameters": "not a schema"}},
    ],
)
def test_a_tool_anthropic_cannot_take_is_a_400(tool):
    assert "tools[0]" in refused({"messages": [HI], "tools": [tool]})


# --- response_format ---


def test_json_object_is_forced_through_a_permissive_tool():
    payload = build({"messages": [HI], "response_format": {"type": "json_object"}})
    assert payload["tools"] == [
        {
            "name": RESPONSE_TOOL,
            "description": "Give your complete answer by calling this tool: its input is the JSON object the user "
            "asked for.",
            "input_schema": {"type": "object"},
        }
    ]
    assert payload["tool_choice"] == {
        "type": "tool",
        "name": RESPONSE_TOOL,
        "disable_parallel_tool_use": True,
    }


def test_json_schema_is_forced_through_a_tool_with_that_schema():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
        "required": ["name", "born"],
        "additionalProperties": False,
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "person",
            "description": "A famous person.",
            "schema": schema,
            "strict": True,
        },
    }
    payload = build({"messages": [HI], "response_format": fmt, "stream": True})
    [tool] = payload["tools"]
    assert tool["name"] == RESPONSE_TOOL
    assert tool["input_schema"] == schema
    assert "'person'" in tool["description"] and "A famous person." in tool["description"]
    assert payload["tool_choice"] == {
        "type": "tool",
        "name": RESPONSE_TOOL,
        "disable_parallel_tool_use": True,
    }


def test_response_format_text_changes_nothing():
    assert build({"messages": [HI], "response_format": {"type": "text"}}) == build({"messages": [HI]})


@pytest.mark.parametrize(
    "body",
    [
        {"response_format": {"type": "json_object"}, "tools": [WEATHER_TOOL]},
        {"response_format": {"type": "json_object"}, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "l", "schema": {"type": "array"}},
            }
        },
        {"response_format": {"type": "json_schema"}},
        {"response_format": {"type": "yaml"}},
    ],
)
def test_a_response_format_anthropic_cannot_honour_is_a_400(body):
    assert "response_format" in refused({"messages": [HI], **body})
