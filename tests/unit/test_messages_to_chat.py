"""Anthropic Messages request -> chat.completions body for OpenAI-compatible providers: pure translation, no
DB, no HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsBase
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import BaseModel, TypeAdapter

from llms.inbound.messages.to_chat import IGNORED, IGNORED_OUTPUT_CONFIG, MAPPED, REFUSED, to_chat
from mcpd.errors import InvalidRequest
from tests.unit.sse_files import DATA_DIR

HI = {"role": "user", "content": "Hi"}
BASE = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [HI]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
PROVIDERS = ("openai", "vllm", "deepseek", "ollama")

_NON_STREAMING = TypeAdapter(CompletionCreateParamsNonStreaming)
_STREAMING = TypeAdapter(CompletionCreateParamsStreaming)


def _plain(value: Any) -> Any:
    """A validated SDK value as plain JSON data (draining pydantic's lazy Iterable validators)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(exclude_unset=True))
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


def assert_valid_for_openai_sdk(chat: dict[str, Any]) -> None:
    """The body (with the model the service adds) validates as the openai SDK's CompletionCreateParams,
    every key known to it: TypedDict validation drops unknown keys, so equality proves there are none."""
    payload = {**chat, "model": "gpt-4o"}
    adapter = _STREAMING if chat.get("stream") else _NON_STREAMING
    assert _plain(adapter.validate_python(payload)) == payload


def chat(body: dict[str, Any], provider: str = "openai") -> dict[str, Any]:
    """to_chat for an openai provider, checked against the openai SDK's request types."""
    translated = to_chat(body, provider=provider)
    if provider == "openai":
        assert_valid_for_openai_sdk(translated)
    return translated


def refused(body: dict[str, Any], provider: str = "openai") -> str:
    """The message of the 400 a body gets."""
    with pytest.raises(InvalidRequest) as caught:
        to_chat(body, provider=provider)
    assert caught.value.status == 400
    return caught.value.message


def with_messages(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**BASE, "messages": list(messages), **fields}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def tool_use(call_id: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": value}


def tool_result(call_id: str, content: Any = None, **extra: Any) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": call_id, **extra}
    return block if content is None else {**block, "content": content}


def base64_image(media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": PNG}}


def calling(*blocks: dict[str, Any]) -> dict[str, Any]:
    """An assistant turn that calls get_weather as toolu_A, then a user turn of these blocks."""
    return with_messages(HI, assistant(tool_use("toolu_A", "get_weather", {"location": "Paris"})), user(*blocks))


CALL_A = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]}


# --- the conversation ---


def test_a_plain_conversation_becomes_chat_messages():
    body = with_messages(
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        user(text("How are you?")),
        system="You are terse.",
    )
    assert chat(body) == {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "How are you?"},
        ],
        "max_completion_tokens": 1024,
    }


def test_system_blocks_become_one_system_message_in_their_order():
    system = [text("first"), text("second", cache_control={"type": "ephemeral"}), text(""), text("third")]
    assert chat({**BASE, "system": system})["messages"][0] == {"role": "system", "content": "first\nsecond\nthird"}


@pytest.mark.parametrize("system", ["", []])
def test_an_empty_system_sends_no_system_message(system):
    assert chat({**BASE, "system": system})["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("system", [[base64_image()], 7, [{"text": "no type"}]])
def test_a_system_that_is_not_text_is_a_400_naming_it(system):
    assert "system" in refused({**BASE, "system": system})


def test_a_mid_conversation_system_message_stays_where_it_is():
    body = with_messages(
        HI,
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": [text("Answer in French.", cache_control={"type": "ephemeral"})]},
        {"role": "user", "content": "How are you?"},
    )
    assert chat(body)["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "How are you?"},
    ]


def test_text_blocks_of_a_message_join_into_one_string():
    body = with_messages(user(text("<system-reminder>cwd</system-reminder>"), text("fix it", cache_control={})))
    assert chat(body)["messages"] == [{"role": "user", "content": "<system-reminder>cwd</system-reminder>\nfix it"}]


def test_consecutive_turns_of_one_role_are_combined_as_anthropic_does():
    body = with_messages(HI, user(text("And")), {"role": "assistant", "content": "A"},
                         {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"})
    assert chat(body)["messages"] == [
        {"role": "user", "content": "Hi\nAnd"},
        {"role": "assistant", "content": "A\nB"},
        {"role": "user", "content": "C"},
    ]


@pytest.mark.parametrize(
    ("image", "url"),
    [
        (base64_image(), f"data:image/png;base64,{PNG}"),
        (base64_image("image/jpeg"), f"data:image/jpeg;base64,{PNG}"),
        (base64_image("image/jpg"), f"data:image/jpeg;base64,{PNG}"),
        (base64_image("IMAGE/WEBP"), f"data:image/webp;base64,{PNG}"),
        (base64_image("image/gif"), f"data:image/gif;base64,{PNG}"),
        ({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
         "https://example.com/cat.jpg"),
    ],
)
def test_image_blocks_become_image_url_parts(image, url):
    body = with_messages(user(text("What is this?"), image))
    assert chat(body)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.mark.parametrize(
    ("image", "field"),
    [
        (base64_image("image/bmp"), "messages[0].content[0].source.media_type"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}},
         "messages[0].content[0].source.data"),
        ({"type": "image", "source": {"type": "url", "url": "ftp://example.com/cat.png"}},
         "messages[0].content[0].source.url"),
        ({"type": "image", "source": {"type": "file", "file_id": "file_011"}}, "messages[0].content[0].source.type"),
        ({"type": "image"}, "messages[0].content[0].source"),
    ],
)
def test_an_image_a_chat_provider_cannot_take_is_a_400_naming_the_field(image, field):
    assert field in refused(with_messages(user(image)))


@pytest.mark.parametrize("kind", ["document", "search_result", "container_upload"])
def test_blocks_a_chat_provider_cannot_take_are_a_400_naming_them(kind):
    message = refused(with_messages(HI, {"role": "assistant", "content": "ok"}, user({"type": kind})))
    assert message == f"messages[2].content[0].type: {kind!r} blocks are not supported for openai."


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (user(tool_use("toolu_A", "f", {})), "messages[0].content[0].type"),
        (user({"type": "thinking", "thinking": "x", "signature": "s"}), "messages[0].content[0].type"),
        (assistant(tool_result("toolu_A", "x")), "messages[0].content[0].type"),
        (assistant(base64_image()), "messages[0].content[0].type"),
        (assistant({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
         "messages[0].content[0].type"),
        ({"role": "tool", "content": "x"}, "messages[0].role"),
        ({"role": "user", "content": 7}, "messages[0].content"),
        ({"role": "user", "content": [{"text": "no type"}]}, "messages[0].content[0]"),
        (user(text(None)), "messages[0].content[0].text"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_message_is_a_400_naming_the_field(message, field):
    assert field in refused(with_messages(message))


@pytest.mark.parametrize("messages", [None, [], "Hi", ["Hi"]])
def test_messages_must_be_a_non_empty_list_of_messages(messages):
    assert "messages" in refused({**BASE, "messages": messages})


# --- tools in the conversation ---


def test_tool_use_and_tool_result_become_tool_calls_and_tool_messages_in_order():
    body = with_messages(
        HI,
        assistant(text("Let me check both."), tool_use("toolu_A", "get_weather", {"location": "Paris"}),
                  tool_use("toolu_B", "get_weather", {"location": "Tōkyō", "units": ["c"]})),
        user(tool_result("toolu_A", "18C, cloudy"), tool_result("toolu_B", [text("25C,"), text("sunny")]),
             text("And tomorrow?")),
    )
    assert chat(body)["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Let me check both.", "tool_calls": [
            {"id": "toolu_A", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
            {"id": "toolu_B", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Tōkyō","units":["c"]}'}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_A", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "toolu_B", "content": "25C,\nsunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_a_tool_call_without_text_has_null_content():
    assert chat(calling(tool_result("toolu_A", "18C")))["messages"][1] == CALL_A


def test_an_empty_tool_result_is_an_empty_tool_message():
    assert chat(calling(tool_result("toolu_A")))["messages"][2] == {
        "role": "tool", "tool_call_id": "toolu_A", "content": ""}


@pytest.mark.parametrize(("content", "sent"), [("No such city", "Error: No such city"), (None, "Error")])
def test_a_tool_error_is_said_in_the_tool_message(content, sent):
    messages = chat(calling(tool_result("toolu_A", content, is_error=True)))["messages"]
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_A", "content": sent}


def test_images_of_a_tool_result_follow_in_a_user_message():
    body = calling(tool_result("toolu_A", [text("the radar:"), base64_image()]), text("What do you see?"))
    assert chat(body)["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_A", "content": "the radar:"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "What do you see?"},
        ]},
    ]


def test_tool_results_go_first_in_their_turn():
    body = calling(text("Here:"), tool_result("toolu_A", "18C"))
    assert [message["role"] for message in chat(body)["messages"]] == ["user", "assistant", "tool", "user"]


@pytest.mark.parametrize(
    ("block", "field"),
    [
        (tool_result("toolu_Z", "x"), "messages[2].content[0].tool_use_id"),
        (tool_result("", "x"), "messages[2].content[0].tool_use_id"),
        (tool_result("toolu_A", "x", is_error="yes"), "messages[2].content[0].is_error"),
        (tool_result("toolu_A", [{"type": "document"}]), "messages[2].content[0].content[0].type"),
        (tool_result("toolu_A", [{"type": "tool_reference", "tool_name": "Read"}]),
         "messages[2].content[0].content[0].type"),
        (tool_result("toolu_A", 7), "messages[2].content[0].content"),
    ],
)
def test_a_tool_result_a_chat_provider_cannot_take_is_a_400_naming_the_field(block, field):
    assert field in refused(calling(block))


def test_a_tool_result_must_answer_the_preceding_assistant_turn():
    body = with_messages(HI, assistant(tool_use("toolu_A", "f", {})), user(tool_result("toolu_A", "1")),
                         {"role": "assistant", "content": "Done."}, user(tool_result("toolu_A", "again")))
    assert "messages[4].content[0].tool_use_id 'toolu_A'" in refused(body)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"type": "tool_use", "name": "f", "input": {}}, "messages[1].content[0].id"),
        ({"type": "tool_use", "id": "toolu_A", "input": {}}, "messages[1].content[0].name"),
        ({"type": "tool_use", "id": "toolu_A", "name": "f", "input": "{}"}, "messages[1].content[0].input"),
    ],
)
def test_a_malformed_tool_use_is_a_400_naming_the_field(block, field):
    assert field in refused(with_messages(HI, assistant(block), HI))


# --- thinking in the conversation ---


THOUGHTFUL = with_messages(
    HI,
    assistant({"type": "thinking", "thinking": "They greet me.", "signature": "EqQBCgIYAhIM"},
              {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
              text("Hello."), tool_use("toolu_A", "get_time", {})),
    user(tool_result("toolu_A", "noon")),
)


@pytest.mark.parametrize("provider", ["openai", "vllm", "ollama"])
def test_thinking_blocks_are_dropped_for_chat_providers(provider):
    assert to_chat(THOUGHTFUL, provider=provider)["messages"][1] == {
        "role": "assistant", "content": "Hello.", "tool_calls": [
            {"id": "toolu_A", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}


def test_thinking_goes_back_to_deepseek_as_reasoning_content():
    message = to_chat(THOUGHTFUL, provider="deepseek")["messages"][1]
    assert message["reasoning_content"] == "They greet me."
    assert message["content"] == "Hello."


def test_an_assistant_turn_of_thinking_alone_is_left_out():
    body = with_messages(HI, assistant({"type": "thinking", "thinking": "Hm.", "signature": "s"}), HI)
    assert chat(body)["messages"] == [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hi"}]


def test_a_final_assistant_message_is_a_prefill_vllm_continues():
    body = with_messages(HI, {"role": "assistant", "content": "The answer is ("})
    payload = to_chat(body, provider="vllm")
    assert payload["messages"][-1] == {"role": "assistant", "content": "The answer is ("}
    assert (payload["continue_final_message"], payload["add_generation_prompt"]) == (True, False)


@pytest.mark.parametrize("provider", ["openai", "deepseek", "ollama"])
def test_a_prefill_other_providers_cannot_continue_is_a_400(provider):
    message = refused(with_messages(HI, {"role": "assistant", "content": "The answer is ("}), provider)
    assert "prefill" in message and provider in message


# --- sampling and limits ---


@pytest.mark.parametrize(("provider", "name"), [("openai", "max_completion_tokens"), ("vllm", "max_tokens"),
                                                ("deepseek", "max_tokens"), ("ollama", "max_tokens")])
def test_max_tokens_is_max_completion_tokens_for_openai_and_max_tokens_otherwise(provider, name):
    payload = to_chat({**BASE, "max_tokens": 32000}, provider=provider)
    assert {key: value for key, value in payload.items() if "tokens" in key} == {name: 32000}


@pytest.mark.parametrize("value", [None, 0, -1, 1.5, "100", True])
def test_max_tokens_is_required_and_positive(value):
    body = {**BASE, "max_tokens": value}
    assert "max_tokens" in refused(body)


def test_temperature_top_p_and_stop_sequences_are_passed_on():
    payload = chat({**BASE, "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END", "###"]})
    assert {key: payload[key] for key in ("temperature", "top_p", "stop")} == {
        "temperature": 0.2, "top_p": 0.9, "stop": ["END", "###"]}


@pytest.mark.parametrize(
    ("name", "value"),
    [("temperature", 1.5), ("temperature", -0.1), ("temperature", "hot"), ("top_p", 2), ("top_p", True),
     ("stop_sequences", "END"), ("stop_sequences", [1]), ("top_k", -1), ("top_k", 2.5)],
)
def test_out_of_range_sampling_values_are_a_400_naming_them(name, value):
    assert name in refused({**BASE, name: value}, "vllm")


def test_empty_stop_sequences_send_nothing():
    assert "stop" not in chat({**BASE, "stop_sequences": []})


def test_top_k_goes_to_vllm():
    assert to_chat({**BASE, "top_k": 40}, provider="vllm")["top_k"] == 40


@pytest.mark.parametrize("provider", ["openai", "deepseek", "ollama"])
def test_top_k_is_refused_by_other_providers(provider):
    assert refused({**BASE, "top_k": 40}, provider) == f"top_k: not supported for {provider} (it would change the answer)."


def test_metadata_user_id_becomes_user():
    assert chat({**BASE, "metadata": {"user_id": "user_0784_account_261d"}})["user"] == "user_0784_account_261d"


@pytest.mark.parametrize("metadata", [{}, {"user_id": None}, {"user_id": ""}])
def test_no_user_id_sends_no_user(metadata):
    assert "user" not in chat({**BASE, "metadata": metadata})


@pytest.mark.parametrize("metadata", [{"user_id": 42}, "user-1"])
def test_a_malformed_metadata_is_a_400(metadata):
    assert "metadata" in refused({**BASE, "metadata": metadata})


def test_stream_is_passed_on_and_stream_options_are_the_adapters():
    payload = chat({**BASE, "stream": True})
    assert payload["stream"] is True and "stream_options" not in payload
    assert "stream" not in chat({**BASE, "stream": False})
    assert "stream" in refused({**BASE, "stream": "yes"})


# --- tools and tool_choice ---


def test_tools_become_function_tools():
    tool = {**WEATHER, "cache_control": {"type": "ephemeral"}, "strict": True, "defer_loading": False,
            "input_examples": [{"location": "Paris"}], "eager_input_streaming": True, "type": "custom"}
    assert chat({**BASE, "tools": [tool, TIME]})["tools"] == [
        {"type": "function", "function": {"name": "get_weather",
                                          "description": "Get the current weather in a given location",
                                          "parameters": WEATHER["input_schema"], "strict": True}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "code_execution_20250825", "name": "code_execution"},
    ],
)
def test_server_tools_are_a_400_naming_them(tool):
    assert refused({**BASE, "tools": [WEATHER, tool]}) == (
        f"tools[1].type: {tool['type']!r} tools are not supported for openai.")


@pytest.mark.parametrize(
    ("tools", "field"),
    [("Bash", "tools"), (["Bash"], "tools[0]"), ([{"input_schema": {}}], "tools[0].name"),
     ([{"name": "f"}], "tools[0].input_schema")],
)
def test_a_malformed_tool_is_a_400_naming_the_field(tools, field):
    assert field in refused({**BASE, "tools": tools})


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "get_time"}, {"tool_choice": {"type": "function", "function": {"name": "get_time"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
        ({"type": "any", "disable_parallel_tool_use": True},
         {"tool_choice": "required", "parallel_tool_calls": False}),
        ({"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
         {"tool_choice": {"type": "function", "function": {"name": "get_time"}}, "parallel_tool_calls": False}),
        ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
        (None, {}),
    ],
)
def test_tool_choice_and_disable_parallel_tool_use_map(choice, expected):
    payload = chat({**BASE, "tools": [WEATHER, TIME], "tool_choice": choice})
    assert {key: payload[key] for key in ("tool_choice", "parallel_tool_calls") if key in payload} == expected


@pytest.mark.parametrize("choice", [{"type": "auto"}, {"type": "none"}])
def test_tool_choice_auto_or_none_without_tools_sends_nothing(choice):
    assert chat({**BASE, "tool_choice": choice, "tools": []}) == chat(BASE)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "sometimes"}}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "auto"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}},
         "tool_choice.disable_parallel_tool_use"),
    ],
)
def test_an_impossible_tool_choice_is_a_400_naming_the_field(body, field):
    assert field in refused({**BASE, **body})


# --- output_config ---

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}}


def test_output_config_format_becomes_a_strict_json_schema_response_format():
    body = {**BASE, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "high"}}
    assert chat(body)["response_format"] == RESPONSE_FORMAT


def test_the_older_output_format_is_taken_the_same_way():
    assert chat({**BASE, "output_format": {"type": "json_schema", "schema": SCHEMA}})["response_format"] == (
        RESPONSE_FORMAT)


@pytest.mark.parametrize("config", [{"effort": "max"}, {"task_budget": {"type": "tokens", "total": 100000}}, {}])
def test_effort_and_task_budget_are_ignored(config):
    assert chat({**BASE, "output_config": config}) == chat(BASE)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format"),
        ({"output_config": "high"}, "output_config"),
        ({"output_config": {"verbosity": "low"}}, "output_config.verbosity"),
        ({"output_format": {"type": "json_schema", "schema": SCHEMA},
          "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, "output_format"),
    ],
)
def test_an_output_config_that_cannot_be_honoured_is_a_400_naming_the_field(body, field):
    assert field in refused({**BASE, **body})


# --- ignored, refused and unknown fields ---


IGNORED_EXAMPLES = [
    ("thinking", {"type": "adaptive"}),
    ("thinking", {"type": "enabled", "budget_tokens": 16000}),
    ("thinking", {"type": "disabled"}),
    ("context_management", {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}),
    ("context_management", {"edits": [{"type": "clear_tool_uses_20250919"}]}),
    ("cache_control", {"type": "ephemeral"}),
    ("service_tier", "standard_only"),
    ("speed", "fast"),
    ("diagnostics", {"previous_response_id": "msg_01"}),
    ("model", "claude-opus-4-6"),
]


@pytest.mark.parametrize(("name", "value"), IGNORED_EXAMPLES)
def test_ignored_fields_are_accepted_and_not_sent(name, value):
    assert chat({**BASE, name: value}) == chat({key: item for key, item in BASE.items() if key != name})


def test_every_ignored_field_is_tested_and_has_a_reason():
    names = {name for name, _ in IGNORED_EXAMPLES}
    assert names == set(IGNORED) and all(IGNORED.values()) and all(IGNORED_OUTPUT_CONFIG.values())


@pytest.mark.parametrize("thinking", ["adaptive", {"budget_tokens": 1024}])
def test_a_malformed_thinking_is_a_400(thinking):
    assert "thinking" in refused({**BASE, "thinking": thinking})


@pytest.mark.parametrize(
    ("name", "value"),
    [("container", "container_011CZ"), ("mcp_servers", [{"type": "url", "url": "https://mcp.example.com/sse",
                                                         "name": "example"}]), ("inference_geo", "eu")],
)
def test_a_refused_field_is_a_400_naming_it_and_why(name, value):
    assert refused({**BASE, name: value}) == f"{name}: not supported for openai ({REFUSED[name]})."


@pytest.mark.parametrize(("name", "value"), [("container", None), ("mcp_servers", []), ("inference_geo", None)])
def test_a_refused_field_at_its_empty_value_is_accepted_and_not_sent(name, value):
    assert chat({**BASE, name: value}) == chat(BASE)


def test_an_unknown_field_is_a_400_naming_it():
    assert refused({**BASE, "frobnicate": 1}, "vllm") == "frobnicate: unknown field, not supported for vllm."


def test_the_field_lists_do_not_overlap_and_cover_the_sdks_request_fields():
    assert not (MAPPED & set(IGNORED)) and not (MAPPED & set(REFUSED)) and not (set(IGNORED) & set(REFUSED))
    body_fields = set(MessageCreateParamsBase.__annotations__) - {"user_profile_id"}  # a header in the SDK
    assert body_fields <= MAPPED | set(IGNORED) | set(REFUSED)


# --- Claude Code ---


def test_a_claude_code_request_translates_to_a_valid_chat_body():
    body = json.loads((DATA_DIR / "claude_code_request.json").read_text())
    assert chat(body) == {
        "messages": [
            {"role": "system", "content": (
                "x-anthropic-billing-header: cc_version=2.1.181.7f3; cc_entrypoint=cli; cch=4b1e0;\n"
                "You are Claude Code, Anthropic's official CLI for Claude.\n"
                "You are an interactive CLI tool that helps users with software engineering tasks.\n\n"
                "# Tone and style\nBe concise.")},
            {"role": "user", "content": (
                "<system-reminder>\nThe working directory is /home/dev/app.\n</system-reminder>\nfix the failing test")},
            {"role": "assistant", "content": "Let me run the tests.", "tool_calls": [
                {"id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "type": "function", "function": {
                    "name": "Bash", "arguments": '{"command":"pytest -q","description":"Run the tests"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
             "content": "Error: 1 failed, 41 passed in 2.31s"},
            {"role": "user", "content": "<system-reminder>\nTodo list is empty.\n</system-reminder>"},
        ],
        "max_completion_tokens": 32000,
        "user": "user_0784c5e1a9f2d3b6_account_261d7b0e-5c3a-4f8e-9b1d-2a6c8e4f0d13_session_b4e5aaaa-9a3e-47c4-84ad-"
                "3a70f38c676e",
        "tools": [
            {"type": "function", "function": {"name": "Bash",
                                              "description": "Executes a given bash command and returns its output.",
                                              "parameters": body["tools"][0]["input_schema"]}},
            {"type": "function", "function": {"name": "Read", "description": "Reads a file from the local filesystem.",
                                              "parameters": body["tools"][1]["input_schema"]}},
        ],
        "stream": True,
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_claude_code_request_is_accepted_by_every_chat_provider(provider):
    body = json.loads((DATA_DIR / "claude_code_request.json").read_text())
    assert to_chat(body, provider=provider)["messages"][0]["role"] == "system"
