"""Anthropic Message -> OpenAI chat.completion, and Anthropic errors -> the contract's errors."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from llms.adapters.anthropic import AnthropicAdapter
from llms.adapters.anthropic.errors import error_from_event
from llms.adapters.anthropic.tools import RESPONSE_TOOL
from llms.adapters.base import Usage
from mcpd.errors import ProviderRequestError, RateLimited, TooLarge, UpstreamError

NOW = 1_750_000_000
ADAPTER = AnthropicAdapter(clock=lambda: NOW + 0.75)


def message(
    content: list[dict[str, Any]], stop_reason: str | None = "end_turn", **usage: int
) -> dict[str, Any]:
    """An Anthropic Message as the API returns it (checked against the anthropic SDK's type)."""
    payload = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503, **usage},
    }
    Message.model_validate(payload)
    return payload


def parse(payload: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    """parse_response, checked against the openai SDK's ChatCompletion type."""
    completion, usage = ADAPTER.parse_response(payload)
    ChatCompletion.model_validate(completion)
    return completion, usage


TEXT = {"type": "text", "text": "Hi! My name is Claude.", "citations": None}


def tool_use(call_id: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": value}


def test_a_text_reply_becomes_a_chat_completion():
    completion, usage = parse(message([TEXT]))
    assert completion == {
        "id": "chatcmpl-msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "created": NOW,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 2095,
            "completion_tokens": 503,
            "total_tokens": 2598,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    assert usage == Usage(prompt_tokens=2095, completion_tokens=503)


def test_text_blocks_are_joined():
    completion, _ = parse(message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}]))
    assert completion["choices"][0]["message"]["content"] == "Hello world"


def test_two_tool_uses_become_tool_calls_with_no_content():
    completion, _ = parse(
        message(
            [
                tool_use("toolu_A", "get_weather", {"location": "Paris"}),
                tool_use("toolu_B", "get_weather", {"location": "Tokyo", "unit": "celsius"}),
            ],
            stop_reason="tool_use",
        )
    )
    assert completion["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "toolu_A",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                },
                {
                    "id": "toolu_B",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location": "Tokyo", "unit": "celsius"}',
                    },
                },
            ],
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }


def test_text_before_a_tool_call_is_kept_as_content():
    completion, _ = parse(
        message(
            [{"type": "text", "text": "Let me check."}, tool_use("toolu_A", "get_time", {})],
            stop_reason="tool_use",
        )
    )
    choice = completion["choices"][0]
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}


def test_thinking_goes_to_reasoning_content_not_content():
    completion, _ = parse(
        message(
            [
                {"type": "thinking", "thinking": "27 * 453 = 12,231", "signature": "EqQBCgIYAhIM"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "text", "text": "12,231"},
            ]
        )
    )
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "12,231",
        "refusal": None,
        "reasoning_content": "27 * 453 = 12,231",
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("tool_use", "stop"),  # no client tool was called (e.g. only the response_format tool)
        ("some_future_reason", "stop"),
        (None, "stop"),
    ],
)
def test_every_stop_reason_maps_to_an_openai_finish_reason(stop_reason, finish_reason):
    payload = message([TEXT])
    payload["stop_reason"] = stop_reason  # unknown values bypass the SDK's Literal on purpose
    completion, _ = parse(payload)
    assert completion["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize("stop_reason", ["tool_use", "end_turn", "max_tokens"])
def test_finish_reason_is_tool_calls_whenever_a_tool_was_called(stop_reason):
    completion, _ = parse(message([tool_use("toolu_A", "get_time", {})], stop_reason=stop_reason))
    assert completion["choices"][0]["finish_reason"] == "tool_calls"


def test_cache_tokens_count_once_in_prompt_tokens():
    payload = message(
        [TEXT],
        input_tokens=10,
        cache_creation_input_tokens=200,
        cache_read_input_tokens=1000,
        output_tokens=50,
    )
    completion, usage = parse(payload)
    assert completion["usage"] == {
        "prompt_tokens": 1210,
        "completion_tokens": 50,
        "total_tokens": 1260,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    assert usage == Usage(prompt_tokens=1210, completion_tokens=50, cache_read_tokens=1000, cache_write_tokens=200)


def test_the_response_format_tool_input_is_returned_as_json_content():
    completion, _ = parse(
        message(
            [tool_use("toolu_J", RESPONSE_TOOL, {"name": "Ada Lovelace", "born": 1815})],
            stop_reason="tool_use",
        )
    )
    choice = completion["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": '{"name": "Ada Lovelace", "born": 1815}',
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"


def test_a_response_format_answer_cut_short_is_length():
    completion, _ = parse(message([tool_use("toolu_J", RESPONSE_TOOL, {})], stop_reason="max_tokens"))
    assert completion["choices"][0]["finish_reason"] == "length"


def test_an_empty_reply_has_empty_content():
    completion, _ = parse(message([], stop_reason="max_tokens"))
    assert completion["choices"][0]["message"]["content"] == ""
    assert completion["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("payload", [None, [], {"type": "message"}, {"content": "text"}])
def test_a_reply_that_is_not_a_message_is_an_upstream_error(payload):
    with pytest.raises(UpstreamError) as caught:
        ADAPTER.parse_response(payload)
    assert caught.value.status == 502


# --- errors ---


def anthropic_error(kind: str, text: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": text},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }


def test_a_400_passes_anthropics_message_on():
    error = ADAPTER.to_error(
        400, anthropic_error("invalid_request_error", "prompt is too long: 210000 tokens"), None
    )
    assert isinstance(error, ProviderRequestError)
    assert (error.status, error.type, error.message) == (
        400,
        "invalid_request_error",
        "prompt is too long: 210000 tokens",
    )


@pytest.mark.parametrize(("status", "kind"), [(401, "authentication_error"), (403, "permission_error")])
def test_an_auth_failure_is_a_502_that_does_not_echo_the_provider(status, kind):
    error = ADAPTER.to_error(status, anthropic_error(kind, "invalid x-api-key sk-ant-FAKE"), None)
    assert isinstance(error, UpstreamError)
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert "x-api-key" not in error.message and "sk-ant" not in error.message
    assert "refused mcpd's API key" in error.message


def test_a_404_keeps_its_status():
    error = ADAPTER.to_error(404, anthropic_error("not_found_error", "model: claude-nope"), None)
    assert isinstance(error, ProviderRequestError)
    assert (error.status, error.message) == (404, "model: claude-nope")


def test_a_413_is_too_large():
    error = ADAPTER.to_error(
        413, anthropic_error("request_too_large", "Request exceeds the maximum size"), None
    )
    assert isinstance(error, TooLarge)
    assert (error.status, error.message) == (413, "Request exceeds the maximum size")


def test_a_429_is_rate_limited_with_retry_after():
    error = ADAPTER.to_error(
        429, anthropic_error("rate_limit_error", "Number of request tokens exceeded"), "17"
    )
    assert isinstance(error, RateLimited)
    assert (error.status, error.retry_after, error.headers()) == (429, "17", {"Retry-After": "17"})


@pytest.mark.parametrize(
    ("status", "payload", "code", "words"),
    [
        (
            500,
            anthropic_error("api_error", "Internal server error"),
            "upstream_server_error",
            ["api_error", "Internal server error"],
        ),
        (
            529,
            anthropic_error("overloaded_error", "Overloaded"),
            "upstream_overloaded",
            ["overloaded_error", "Overloaded"],
        ),
        (503, "<html>Service Unavailable</html>", "upstream_server_error", ["503", "Service Unavailable"]),
        (502, None, "upstream_server_error", ["502"]),
    ],
)
def test_server_errors_are_a_502_naming_the_provider_error(status, payload, code, words):
    error = ADAPTER.to_error(status, payload, None)
    assert isinstance(error, UpstreamError)
    assert (error.status, error.code) == (502, code)
    assert all(word in error.message for word in words)


def test_another_4xx_keeps_its_status_and_message():
    error = ADAPTER.to_error(402, anthropic_error("billing_error", "Your credit balance is too low"), None)
    assert isinstance(error, ProviderRequestError)
    assert (error.status, error.message) == (402, "Your credit balance is too low")


@pytest.mark.parametrize(
    ("kind", "error_class", "status", "code"),
    [
        ("overloaded_error", UpstreamError, 502, "upstream_overloaded"),
        ("api_error", UpstreamError, 502, "upstream_server_error"),
        ("rate_limit_error", RateLimited, 429, None),
        ("invalid_request_error", ProviderRequestError, 400, None),
        ("request_too_large", TooLarge, 413, None),
        ("authentication_error", UpstreamError, 502, "upstream_auth_failed"),
        ("something_new", UpstreamError, 502, "upstream_server_error"),
    ],
)
def test_an_in_stream_error_event_maps_by_its_type(kind, error_class, status, code):
    error = error_from_event(anthropic_error(kind, "Overloaded"))
    assert type(error) is error_class
    assert (error.status, error.code) == (status, code)
