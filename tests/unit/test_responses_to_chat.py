"""Responses request -> chat.completions body for the chat providers and (through the anthropic adapter) the
Messages API: pure translation, no DB, no HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsStreaming
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from openai.types.responses.response_create_params import ResponseCreateParamsBase
from pydantic import BaseModel, TypeAdapter

from llms.adapters.anthropic import AnthropicAdapter
from llms.adapters.base import Target
from llms.inbound.responses.to_chat import IGNORED, MAPPED, REFUSED, to_chat
from llms.inbound.responses.tools import CUSTOM_NOTE
from llms.inbound.responses.validation import STATEFUL, check_request
from mcpd.errors import InvalidRequest
from tests.unit.sse_files import DATA_DIR

BASE = {"model": "my-llm", "input": "Hi"}
HI = {"role": "user", "content": "Hi"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PNG_URL = f"data:image/png;base64,{PNG}"
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the weather of a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
           "strict": True}
PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" LF'}}
CHAT_PROVIDERS = ("openai", "vllm", "deepseek", "ollama")
TARGET = Target(base_url="https://api.anthropic.com/v1", model="claude-sonnet-4-5", api_key="sk-ant-FAKE",
                default_max_tokens=32000)

_NON_STREAMING = TypeAdapter(CompletionCreateParamsNonStreaming)
_STREAMING = TypeAdapter(CompletionCreateParamsStreaming)
_ANTHROPIC = TypeAdapter(MessageCreateParamsStreaming)


def _plain(value: Any) -> Any:
    """A validated SDK value as plain JSON data (draining pydantic's lazy Iterable validators)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(exclude_unset=True))
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


def assert_valid_for_openai_sdk(body: dict[str, Any]) -> None:
    """The chat body (with the model the service adds) validates as the openai SDK's CompletionCreateParams,
    every key known to it (TypedDict validation drops unknown keys: equality proves there are none)."""
    payload = {**body, "model": "gpt-4o"}
    adapter = _STREAMING if body.get("stream") else _NON_STREAMING
    assert _plain(adapter.validate_python(payload)) == payload


def chat(body: dict[str, Any], provider: str = "vllm", **options: Any) -> dict[str, Any]:
    """to_chat's chat body (no notes expected), checked against the openai SDK's request types."""
    translated, notes = to_chat(body, provider=provider, **options)
    if provider != "anthropic" and not any("reasoning_content" in m for m in translated["messages"]):
        assert_valid_for_openai_sdk(translated)
    return translated


def notes_of(body: dict[str, Any], provider: str = "vllm", **options: Any) -> list[str]:
    return to_chat(body, provider=provider, **options)[1]


def refused(body: dict[str, Any], provider: str = "vllm") -> InvalidRequest:
    """The 400 a body gets."""
    with pytest.raises(InvalidRequest) as caught:
        to_chat(body, provider=provider)
    assert caught.value.status == 400
    return caught.value


def anthropic_body(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What goes to Anthropic: to_chat, then the anthropic adapter, checked against the anthropic SDK's
    MessageCreateParams (every key known to it)."""
    options.setdefault("default_max_tokens", TARGET.default_max_tokens)  # as the route passes the Llm's
    translated, _ = to_chat(body, provider="anthropic", **options)
    payload = AnthropicAdapter().build_request(TARGET, translated).json
    if payload.get("stream"):
        assert _plain(_ANTHROPIC.validate_python(payload)) == payload
    return payload


def with_input(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**BASE, "input": list(items), **fields}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(parts)}


def said(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def input_text(text: str) -> dict[str, str]:
    return {"type": "input_text", "text": text}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, value: Any = "18C") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": value}


def tool_call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


REASONING = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "**Checking the weather**"}],
             "content": None, "encrypted_content": "gAAAAABpZN9eZmFrZQ=="}


# --- the conversation ---


def test_a_string_input_is_one_user_message():
    assert chat(BASE) == {"messages": [{"role": "user", "content": "Hi"}]}


def test_instructions_are_a_system_message_first():
    assert chat({**BASE, "instructions": "Be terse."})["messages"] == [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]


def test_message_items_keep_their_roles_and_developer_is_system():
    body = with_input({"role": "developer", "content": "Answer in French."}, HI, said("Bonjour."),
                      {"type": "message", "role": "system", "content": [input_text("Be brief.")]},
                      {"type": "message", "role": "user", "content": "Ça va ?"})
    assert chat(body)["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Ça va ?"},
    ]


def test_text_parts_of_a_message_join_into_one_string():
    body = with_input(user(input_text("<environment_context/>"), input_text(""), input_text("fix it")))
    assert chat(body)["messages"] == [{"role": "user", "content": "<environment_context/>\nfix it"}]


@pytest.mark.parametrize("url", [PNG_URL, "https://example.com/cat.png"])
def test_input_images_become_image_url_parts_without_detail(url):
    body = with_input(user(input_text("What is this?"), {"type": "input_image", "image_url": url, "detail": "high"}))
    assert chat(body)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]


def test_an_image_for_anthropic_must_be_a_type_it_takes():
    body = with_input(user({"type": "input_image", "image_url": "data:image/bmp;base64,Qk0="}))
    error = refused(body, "anthropic")
    assert error.param == "input[0].content[0].image_url" and "image/png" in error.message


def test_assistant_output_text_and_refusal_are_what_it_said():
    body = with_input(HI, {"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": "Sure.", "annotations": []}, {"type": "refusal", "refusal": "But not that."}]})
    assert chat(body)["messages"][1] == {"role": "assistant", "content": "Sure.\nBut not that."}


@pytest.mark.parametrize(
    ("item", "param"),
    [
        (user({"type": "input_image", "file_id": "file-abc123"}), "input[0].content[0].file_id"),
        (user({"type": "input_image", "image_url": "ftp://example.com/cat.png"}), "input[0].content[0].image_url"),
        (user({"type": "input_file", "file_id": "file-abc123"}), "input[0].content[0].type"),
        (user({"type": "input_audio", "input_audio": {}}), "input[0].content[0].type"),
        (user({"type": "input_text", "text": 7}), "input[0].content[0].text"),
        ({"type": "message", "role": "assistant", "content": [{"type": "input_image", "image_url": PNG_URL}]},
         "input[0].content[0].type"),
        ({"type": "message", "role": "user", "content": [{"type": "refusal", "refusal": "no"}]},
         "input[0].content[0].type"),
        ({"type": "message", "role": "tool", "content": "x"}, "input[0].role"),
        ({"type": "message", "role": "user", "content": 7}, "input[0].content"),
        ({"type": "message", "role": "user", "content": [{"text": "no type"}]}, "input[0].content[0].type"),
    ],
)
def test_a_message_a_chat_provider_cannot_take_is_a_400_naming_the_field(item, param):
    error = refused(with_input(item))
    assert error.param == param and error.message.startswith(param)


@pytest.mark.parametrize("value", [None, [], 7, ["Hi"]])
def test_input_must_be_a_string_or_a_list_of_items(value):
    assert refused({**BASE, "input": value}).param.startswith("input")


def test_instructions_must_be_a_string():
    assert refused({**BASE, "instructions": ["Be terse."]}).param == "instructions"


# --- tool calls in the conversation ---


def test_calls_after_assistant_text_are_one_assistant_message_and_outputs_are_tool_messages():
    body = with_input(HI, said("Let me check both."), call("call_A"),
                      call("call_B", arguments='{"city":"Tōkyō"}'), output("call_A"), output("call_B", "25C"))
    assert chat(body)["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Let me check both.",
         "tool_calls": [tool_call("call_A"), tool_call("call_B", arguments='{"city":"Tōkyō"}')]},
        {"role": "tool", "tool_call_id": "call_A", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_B", "content": "25C"},
    ]


def test_a_call_without_text_has_null_content():
    assert chat(with_input(HI, call("call_A"), output("call_A")))["messages"][1] == {
        "role": "assistant", "content": None, "tool_calls": [tool_call("call_A")]}


def test_calls_answered_one_at_a_time_are_assistant_messages_of_their_own():
    body = with_input(HI, call("call_A"), output("call_A"), call("call_B"), output("call_B"))
    assert [message["role"] for message in chat(body)["messages"]] == ["user", "assistant", "tool", "assistant",
                                                                         "tool"]


def test_an_output_of_parts_is_its_text_and_its_images_follow_in_a_user_message():
    body = with_input(HI, call("call_A", "screenshot", "{}"), call("call_B", "screenshot", "{}"),
                      output("call_A", [input_text("the page:"), {"type": "input_image", "image_url": PNG_URL}]),
                      output("call_B", [input_text("done")]),
                      user(input_text("What do you see?")))
    assert chat(body)["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_A", "content": "the page:"},
        {"role": "tool", "tool_call_id": "call_B", "content": "done"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]},
        {"role": "user", "content": "What do you see?"},
    ]


def test_a_custom_tool_call_is_a_call_with_its_input_as_the_one_string_argument():
    body = with_input(HI, {"type": "custom_tool_call", "call_id": "call_P", "name": "apply_patch",
                           "input": '*** Begin Patch\n+say "hi"\n'},
                      {"type": "custom_tool_call_output", "call_id": "call_P", "output": "Done!"})
    assert chat(body)["messages"][1:] == [
        {"role": "assistant", "content": None,
         "tool_calls": [tool_call("call_P", "apply_patch", '{"input":"*** Begin Patch\\n+say \\"hi\\"\\n"}')]},
        {"role": "tool", "tool_call_id": "call_P", "content": "Done!"},
    ]


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([HI, output("call_Z")], "input[1].call_id"),
        ([HI, call("call_A"), output("call_A"), said("ok"), output("call_A")], "input[4].call_id"),
        ([HI, call("call_A"), HI], "input[1].call_id"),
        ([HI, call("call_A")], "input[1].call_id"),
        ([HI, {**call("call_A"), "call_id": ""}], "input[1].call_id"),
        ([HI, {**call("call_A"), "name": None}], "input[1].name"),
        ([HI, {**call("call_A"), "arguments": {"city": "Paris"}}], "input[1].arguments"),
        ([HI, {"type": "custom_tool_call", "call_id": "call_P", "name": "apply_patch"}], "input[1].input"),
        ([HI, call("call_A"), output("call_A", 18)], "input[2].output"),
        ([HI, call("call_A"), output("call_A", [{"type": "input_file", "file_id": "f"}])], "input[2].output[0].type"),
    ],
)
def test_calls_and_outputs_that_do_not_pair_up_are_a_400_naming_the_field(items, param):
    assert refused(with_input(*items)).param == param


def test_an_unanswered_call_is_named_with_the_item_after_it():
    assert "before input[2]" in refused(with_input(HI, call("call_A"), HI)).message


# --- reasoning items ---


@pytest.mark.parametrize("provider", ["vllm", "ollama", "openai", "anthropic"])
def test_reasoning_items_are_dropped_and_noted(provider):
    body = with_input(HI, REASONING, said("Sunny."), HI, REASONING, call("call_A"), output("call_A"))
    translated, notes = to_chat(body, provider=provider)
    assert all("reasoning_content" not in message for message in translated["messages"])
    assert notes[0] == f"dropped 2 reasoning items: not replayable to {provider}"


def test_one_dropped_reasoning_item_is_noted_in_the_singular():
    assert notes_of(with_input(HI, REASONING, said("Sunny."), HI)) == [
        "dropped 1 reasoning item: not replayable to vllm"]


def test_reasoning_goes_back_to_deepseek_as_reasoning_content_of_its_turn():
    thought = {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "Paris, then."}]}
    body = with_input(HI, REASONING, call("call_A"), output("call_A"), thought, said("Sunny."), HI)
    translated, notes = to_chat(body, provider="deepseek")
    assert translated["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [tool_call("call_A")],
                                         "reasoning_content": "**Checking the weather**"}
    assert translated["messages"][3] == {"role": "assistant", "content": "Sunny.", "reasoning_content": "Paris, then."}
    assert notes == []


def test_reasoning_between_an_assistant_text_and_its_call_stays_in_that_turn():
    body = with_input(HI, said("Checking."), REASONING, call("call_A"), output("call_A"))
    assert chat(body, "deepseek")["messages"][1] == {
        "role": "assistant", "content": "Checking.", "tool_calls": [tool_call("call_A")],
        "reasoning_content": "**Checking the weather**"}


def test_encrypted_reasoning_alone_is_dropped_for_deepseek_too():
    body = with_input(HI, {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA"}, said("Hi!"), HI)
    assert notes_of(body, "deepseek") == ["dropped 1 reasoning item: not replayable to deepseek"]


# --- items that cannot be translated ---


def test_an_item_reference_is_a_400_saying_mcpd_keeps_no_items():
    error = refused(with_input(HI, {"type": "item_reference", "id": "msg_123"}))
    assert error.param == "input[1].type" and "stateless" in error.message


@pytest.mark.parametrize("kind", ["web_search_call", "file_search_call", "local_shell_call", "mcp_call",
                                  "compaction", "computer_call_output"])
def test_items_of_built_in_tools_are_a_400_naming_their_type(kind):
    error = refused(with_input(HI, {"type": kind, "id": "x"}))
    assert (error.param, error.message) == (
        "input[1].type", f"input[1].type: {kind!r} items of OpenAI's built-in tools are not supported for vllm.")


def test_an_unknown_item_is_a_400_naming_its_type():
    assert refused(with_input(HI, {"type": "thought"})).param == "input[1].type"


# --- tools ---


def test_function_tools_are_nested_and_strict_only_when_asked():
    lax = {"type": "function", "name": "get_time", "parameters": None, "strict": False, "defer_loading": False}
    assert chat({**BASE, "tools": [WEATHER, lax]})["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Get the weather of a city.",
                                          "parameters": WEATHER["parameters"], "strict": True}},
        {"type": "function", "function": {"name": "get_time"}},
    ]


def test_a_custom_tool_is_a_function_of_one_string_described_by_its_grammar():
    assert chat({**BASE, "tools": [PATCH]})["tools"] == [{"type": "function", "function": {
        "name": "apply_patch",
        "description": f"Edit files.\n\n{CUSTOM_NOTE}",
        "parameters": {"type": "object", "properties": {"input": {"type": "string", "description": (
            "The tool's raw input (not JSON): text that matches this Lark grammar:\n"
            'start: "*** Begin Patch" LF')}}, "required": ["input"]},
    }}]


@pytest.mark.parametrize(
    ("fmt", "description"),
    [
        (None, "The tool's raw input: free-form text, not JSON."),
        ({"type": "text"}, "The tool's raw input: free-form text, not JSON."),
        ({"type": "grammar", "syntax": "regex", "definition": r"^\d+$"},
         "The tool's raw input (not JSON): text that matches this regular expression:\n^\\d+$"),
    ],
)
def test_a_custom_tools_format_tells_the_model_what_to_write(fmt, description):
    tool = {"type": "custom", "name": "note"} | ({} if fmt is None else {"format": fmt})
    [function] = chat({**BASE, "tools": [tool]})["tools"]
    assert function["function"]["parameters"]["properties"]["input"]["description"] == description
    assert function["function"]["description"] == CUSTOM_NOTE


@pytest.mark.parametrize(
    ("fmt", "param"),
    [({"type": "grammar", "syntax": "ebnf", "definition": "x"}, "tools[0].format.syntax"),
     ({"type": "grammar", "syntax": "lark", "definition": ""}, "tools[0].format.definition"),
     ({"type": "json"}, "tools[0].format")],
)
def test_a_custom_format_that_cannot_be_described_is_a_400(fmt, param):
    assert refused({**BASE, "tools": [{"type": "custom", "name": "note", "format": fmt}]}).param == param


@pytest.mark.parametrize("kind", ["web_search", "web_search_preview", "file_search", "code_interpreter",
                                  "computer_use_preview", "image_generation", "mcp", "shell", "local_shell",
                                  "apply_patch", "tool_search"])
def test_built_in_tools_are_a_400_naming_them(kind):
    error = refused({**BASE, "tools": [WEATHER, {"type": kind}]})
    assert error.param == "tools[1].type" and error.message.startswith(f"tools[1].type: {kind!r} tools are ")


@pytest.mark.parametrize(
    ("tools", "param"),
    [("get_weather", "tools"), (["get_weather"], "tools[0]"), ([{"type": "function"}], "tools[0].name"),
     ([{**WEATHER, "parameters": "city"}], "tools[0].parameters"),
     ([{**WEATHER, "description": 1}], "tools[0].description"), ([{**WEATHER, "strict": "yes"}], "tools[0].strict"),
     ([WEATHER, {**PATCH, "name": "get_weather"}], "tools[1].name")],
)
def test_a_malformed_tool_is_a_400_naming_the_field(tools, param):
    assert refused({**BASE, "tools": tools}).param == param


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
        ({"type": "custom", "name": "apply_patch"}, {"type": "function", "function": {"name": "apply_patch"}}),
    ],
)
def test_tool_choice_maps(choice, sent):
    assert chat({**BASE, "tools": [WEATHER, PATCH], "tool_choice": choice})["tool_choice"] == sent


def test_allowed_tools_offers_only_those_tools_with_its_mode():
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "custom", "name": "apply_patch"}]}
    payload = chat({**BASE, "tools": [WEATHER, PATCH], "tool_choice": choice})
    assert [tool["function"]["name"] for tool in payload["tools"]] == ["apply_patch"]
    assert payload["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ("sometimes", "tool_choice"),
        ({"type": "function", "name": "nope"}, "tool_choice.name"),
        ({"type": "function", "name": "apply_patch"}, "tool_choice.name"),
        ({"type": "custom", "name": "get_weather"}, "tool_choice.name"),
        ({"type": "web_search_preview"}, "tool_choice.type"),
        ({"type": "mcp", "server_label": "deepwiki"}, "tool_choice.type"),
        ({"type": "allowed_tools", "mode": "any", "tools": [{"type": "function", "name": "get_weather"}]},
         "tool_choice.mode"),
        ({"type": "allowed_tools", "mode": "auto", "tools": []}, "tool_choice.tools"),
        ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "nope"}]},
         "tool_choice.tools[0]"),
        (7, "tool_choice"),
    ],
)
def test_an_impossible_tool_choice_is_a_400_naming_the_field(choice, param):
    assert refused({**BASE, "tools": [WEATHER, PATCH], "tool_choice": choice}).param == param


def test_a_required_tool_choice_without_tools_is_a_400():
    assert refused({**BASE, "tool_choice": "required"}).param == "tool_choice"


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_tool_choice_auto_or_none_without_tools_sends_nothing(choice):
    assert chat({**BASE, "tools": [], "tool_choice": choice}) == chat(BASE)


@pytest.mark.parametrize(("value", "sent"), [(False, {"parallel_tool_calls": False}), (True, {}), (None, {})])
def test_parallel_tool_calls_false_is_sent_true_is_every_providers_default(value, sent):
    payload = chat({**BASE, "tools": [WEATHER], "parallel_tool_calls": value})
    assert {key: payload[key] for key in ("parallel_tool_calls",) if key in payload} == sent


def test_a_non_boolean_parallel_tool_calls_is_a_400():
    assert refused({**BASE, "tools": [WEATHER], "parallel_tool_calls": "no"}).param == "parallel_tool_calls"


# --- sampling, limits, format ---


@pytest.mark.parametrize(("provider", "name"), [("openai", "max_completion_tokens"), ("vllm", "max_tokens"),
                                                ("deepseek", "max_tokens"), ("ollama", "max_tokens"),
                                                ("anthropic", "max_tokens")])
def test_max_output_tokens_is_max_completion_tokens_for_openai_and_max_tokens_otherwise(provider, name):
    payload, _ = to_chat({**BASE, "max_output_tokens": 2000}, provider=provider)
    assert {key: value for key, value in payload.items() if "tokens" in key} == {name: 2000}


@pytest.mark.parametrize("value", [0, -1, 1.5, "100", True])
def test_a_bad_max_output_tokens_is_a_400(value):
    assert refused({**BASE, "max_output_tokens": value}).param == "max_output_tokens"


def test_temperature_and_top_p_are_passed_on():
    payload = chat({**BASE, "temperature": 1.5, "top_p": 0.9})
    assert (payload["temperature"], payload["top_p"]) == (1.5, 0.9)


@pytest.mark.parametrize(("name", "value"), [("temperature", 2.5), ("temperature", "hot"), ("top_p", 1.1),
                                             ("top_p", True)])
def test_out_of_range_sampling_values_are_a_400_naming_them(name, value):
    assert refused({**BASE, name: value}).param == name


@pytest.mark.parametrize(
    ("fields", "user"),
    [({"safety_identifier": "sha-3f2a"}, "sha-3f2a"), ({"user": "alice"}, "alice"),
     ({"safety_identifier": "sha-3f2a", "user": "alice"}, "sha-3f2a")],
)
def test_safety_identifier_or_else_user_is_the_chat_user(fields, user):
    assert chat({**BASE, **fields})["user"] == user


def test_a_non_string_user_is_a_400():
    assert refused({**BASE, "user": 42}).param == "user"


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}


def test_a_json_schema_format_becomes_a_nested_response_format():
    fmt = {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True, "description": "Who."}
    assert chat({**BASE, "text": {"format": fmt, "verbosity": "low"}})["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True,
                                               "description": "Who."}}


def test_a_json_object_format_is_json_mode():
    assert chat({**BASE, "text": {"format": {"type": "json_object"}}})["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("text", [{"format": {"type": "text"}}, {"verbosity": "high"}, {}])
def test_a_text_format_and_verbosity_send_nothing(text):
    assert chat({**BASE, "text": text}) == chat(BASE)


@pytest.mark.parametrize(
    ("text", "param"),
    [
        ({"format": {"type": "xml"}}, "text.format.type"),
        ({"format": {"type": "json_schema", "schema": SCHEMA}}, "text.format.name"),
        ({"format": {"type": "json_schema", "name": "person"}}, "text.format.schema"),
        ({"format": {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": "yes"}},
         "text.format.strict"),
        ({"verbosity": "loud"}, "text.verbosity"),
        ({"stop": ["END"]}, "text.stop"),
        ("json", "text"),
    ],
)
def test_a_text_config_that_cannot_be_honoured_is_a_400_naming_the_field(text, param):
    assert refused({**BASE, "text": text}).param == param


def test_stream_asks_for_the_usage_chunk():
    assert chat({**BASE, "stream": True}) == {"messages": [{"role": "user", "content": "Hi"}], "stream": True,
                                              "stream_options": {"include_usage": True}}
    assert "stream" not in chat({**BASE, "stream": False})


def test_a_non_boolean_stream_is_a_400():
    assert refused({**BASE, "stream": "yes"}).param == "stream"


# --- reasoning.effort ---


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
@pytest.mark.parametrize("effort", ["minimal", "low", "high"])
def test_reasoning_effort_is_not_sent_to_chat_providers(provider, effort):
    body = {**BASE, "reasoning": {"effort": effort, "summary": "auto"}}
    assert to_chat(body, provider=provider) == to_chat(BASE, provider=provider)


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384),
                                                ("xhigh", 32768), ("max", 32768)])
def test_reasoning_effort_is_anthropic_thinking_with_a_budget(effort, budget):
    payload, notes = to_chat({**BASE, "reasoning": {"effort": effort}}, provider="anthropic",
                             default_max_tokens=100000)
    assert (payload["max_tokens"], payload["thinking"], notes) == (
        100000, {"type": "enabled", "budget_tokens": budget}, [])


def test_the_thinking_budget_takes_at_most_half_of_max_output_tokens():
    payload, _ = to_chat({**BASE, "max_output_tokens": 10000, "reasoning": {"effort": "high"}}, provider="anthropic")
    assert (payload["max_tokens"], payload["thinking"]["budget_tokens"]) == (10000, 5000)


def test_without_a_limit_the_thinking_budget_fits_the_llms_default_max_tokens():
    payload, _ = to_chat({**BASE, "reasoning": {"effort": "high"}}, provider="anthropic", default_max_tokens=4096)
    assert (payload["max_tokens"], payload["thinking"]["budget_tokens"]) == (4096, 2048)


def test_too_few_max_tokens_for_a_thinking_budget_send_none_and_say_so():
    payload, notes = to_chat({**BASE, "max_output_tokens": 2000, "reasoning": {"effort": "low"}}, provider="anthropic")
    assert "thinking" not in payload and payload["max_tokens"] == 2000
    assert notes == ["reasoning.effort not applied: max tokens 2000 leave no thinking budget of at least 1024 (it "
                     "may take half)"]


@pytest.mark.parametrize("effort", ["none", "minimal", None])
def test_no_effort_is_no_thinking(effort):
    assert to_chat({**BASE, "reasoning": {"effort": effort}}, provider="anthropic") == (
        {"messages": [{"role": "user", "content": "Hi"}]}, [])


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"input": [HI, call("call_A"), output("call_A")], "tools": [WEATHER]},
         "anthropic needs the signed thinking of the turn whose tool calls are answered"),
        ({"tools": [WEATHER], "tool_choice": "required"}, "anthropic does not force a tool call while thinking"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"}},
         "anthropic does not force a tool call while thinking"),
        ({"text": {"format": {"type": "json_object"}}},
         "anthropic answers text.format through a forced tool, which thinking does not allow"),
        ({"temperature": 0.2}, "anthropic takes no temperature but 1 while thinking"),
        ({"top_p": 0.5}, "anthropic takes no top_p below 0.95 while thinking"),
    ],
)
def test_what_anthropic_refuses_with_thinking_goes_without_it_and_says_why(fields, why):
    payload, notes = to_chat({**BASE, "reasoning": {"effort": "high"}, **fields}, provider="anthropic")
    assert "thinking" not in payload
    assert notes == [f"reasoning.effort not applied: {why}"]


def test_thinking_goes_to_anthropic_as_the_adapter_sends_it():
    payload = anthropic_body({**BASE, "stream": True, "reasoning": {"effort": "medium"}}, default_max_tokens=32000)
    assert (payload["max_tokens"], payload["thinking"]) == (32000, {"type": "enabled", "budget_tokens": 4096})


@pytest.mark.parametrize(
    ("reasoning", "param"),
    [({"effort": "extreme"}, "reasoning.effort"), ({"effort": "high", "budget": 1}, "reasoning.budget"),
     ({"mode": "pro"}, "reasoning.mode"), ("high", "reasoning")],
)
def test_a_reasoning_config_that_cannot_be_honoured_is_a_400_naming_the_field(reasoning, param):
    assert refused({**BASE, "reasoning": reasoning}, "anthropic").param == param


# --- ignored, refused and unknown fields ---


IGNORED_EXAMPLES = [
    ("model", "gpt-5-codex"),
    ("store", True),
    ("store", False),
    ("include", ["reasoning.encrypted_content", "web_search_call.action.sources"]),
    ("metadata", {"ticket": "MCPD-42"}),
    ("prompt_cache_key", "0199a7c4-5b3e-7d21-9f40-8c2e6a1d3b57"),
    ("prompt_cache_retention", "24h"),
    ("prompt_cache_options", {"mode": "implicit"}),
    ("service_tier", "priority"),
    ("truncation", "auto"),
    ("truncation", "disabled"),
    ("stream_options", {"include_obfuscation": False}),
    ("max_tool_calls", 5),
    ("client_metadata", {"x-codex-installation-id": "0199a7c4"}),
]


@pytest.mark.parametrize(("name", "value"), IGNORED_EXAMPLES)
def test_ignored_fields_are_accepted_and_not_sent(name, value):
    assert to_chat({**BASE, name: value}, provider="vllm") == to_chat(BASE, provider="vllm")


def test_every_ignored_field_is_tested_and_has_a_reason():
    assert {name for name, _ in IGNORED_EXAMPLES} == set(IGNORED) and all(IGNORED.values())


REFUSED_EXAMPLES = [
    ("prompt", {"id": "pmpt_abc123", "version": "2"}),
    ("context_management", [{"type": "compaction", "compact_threshold": 200000}]),
    ("moderation", {"model": "omni-moderation-latest"}),
    ("top_logprobs", 5),
]


@pytest.mark.parametrize(("name", "value"), REFUSED_EXAMPLES)
def test_a_refused_field_is_a_400_naming_it_and_why(name, value):
    error = refused({**BASE, name: value})
    assert (error.param, error.message) == (name, f"{name}: not supported ({REFUSED[name]}).")


@pytest.mark.parametrize(("name", "value"), [
    ("previous_response_id", "resp_0cd5d6b8310055d6"),
    ("conversation", "conv_689667905b048191b4740501625afd940c7533ace33a2dab"),
    ("conversation", {"id": "conv_6896"}),
    ("background", True),
])
def test_server_side_state_is_refused_on_every_path_naming_the_field(name, value):
    with pytest.raises(InvalidRequest) as refusal:
        check_request({**BASE, name: value})
    assert refusal.value.param == name and refusal.value.message.startswith(f"{name}: mcpd ")
    assert "stateless" in refusal.value.message or "stores no responses" in refusal.value.message


@pytest.mark.parametrize(("name", "value"), [("previous_response_id", None), ("conversation", None),
                                             ("background", False), ("top_logprobs", 0), ("prompt", None),
                                             ("context_management", []), ("moderation", None)])
def test_a_refused_field_at_its_neutral_value_is_accepted_and_not_sent(name, value):
    check_request({**BASE, name: value})
    assert to_chat({**BASE, name: value}, provider="vllm") == to_chat(BASE, provider="vllm")


def test_every_refused_field_is_tested():
    assert {name for name, _ in REFUSED_EXAMPLES} == set(REFUSED)


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"include": ["message.output_text.logprobs"]}, "include[0]"),
     ({"include": ["reasoning.encrypted_content", "everything"]}, "include[1]"), ({"include": "all"}, "include"),
     ({"truncation": "middle"}, "truncation"), ({"metadata": {"ticket": 42}}, "metadata")],
)
def test_a_malformed_or_refused_ignored_field_is_a_400_naming_it(fields, param):
    assert refused({**BASE, **fields}).param == param


def test_an_unknown_field_is_a_400_naming_it():
    error = refused({**BASE, "frobnicate": 1}, "ollama")
    assert (error.param, error.message) == ("frobnicate", "frobnicate: unknown field, not supported for ollama.")


def test_the_field_lists_do_not_overlap_and_cover_the_sdks_request_fields():
    lists = [MAPPED, set(IGNORED), set(REFUSED), set(STATEFUL)]
    assert sum(map(len, lists)) == len(set().union(*lists))
    assert set(ResponseCreateParamsBase.__annotations__) | {"stream"} <= set().union(*lists)


# --- a recorded Codex turn ---


def codex_request() -> dict[str, Any]:
    return json.loads((DATA_DIR / "codex_request.json").read_text())


def test_a_codex_turn_translates_for_vllm():
    body = codex_request()
    payload, notes = to_chat(body, provider="vllm")
    assert_valid_for_openai_sdk(payload)
    shell, plan, patch = body["tools"]
    assert payload == {
        "messages": [
            {"role": "system", "content": body["instructions"]},
            {"role": "user", "content": body["input"][0]["content"][0]["text"]},
            {"role": "user", "content": body["input"][1]["content"][0]["text"]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hey there! What's up?"},
            {"role": "user", "content": "fix the failing test"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call(
                "call_kX2o9TNxVq7W4bL1mZrY8sJe", "shell_command",
                '{"command":"make test","workdir":"/home/dev/app"}')]},
            {"role": "tool", "tool_call_id": "call_kX2o9TNxVq7W4bL1mZrY8sJe", "content": body["input"][8]["output"]},
            {"role": "assistant", "content": None, "tool_calls": [tool_call(
                "call_Q7mV3nR8tK2pL5wX9cB4dF6h", "apply_patch", json.dumps(
                    {"input": body["input"][9]["input"]}, separators=(",", ":")))]},
            {"role": "tool", "tool_call_id": "call_Q7mV3nR8tK2pL5wX9cB4dF6h",
             "content": "Success. Updated the following files:\nM app/add.py\n"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "shell_command", "description": shell["description"],
                                              "parameters": shell["parameters"]}},
            {"type": "function", "function": {"name": "update_plan", "description": plan["description"],
                                              "parameters": plan["parameters"]}},
            {"type": "function", "function": {
                "name": "apply_patch", "description": f"{patch['description']}\n\n{CUSTOM_NOTE}",
                "parameters": {"type": "object", "properties": {"input": {"type": "string", "description": (
                    "The tool's raw input (not JSON): text that matches this Lark grammar:\n"
                    + patch["format"]["definition"])}}, "required": ["input"]}}},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert notes == ["dropped 2 reasoning items: not replayable to vllm"]


def test_a_codex_turn_goes_to_anthropic_through_the_adapter():
    body = codex_request()
    payload = anthropic_body(body)
    assert payload["model"] == "claude-sonnet-4-5" and payload["max_tokens"] == 32000
    assert payload["system"] == [{"type": "text", "text": body["instructions"]}]
    assert [(turn["role"], [block["type"] for block in turn["content"]]) for turn in payload["messages"]] == [
        ("user", ["text", "text", "text"]),
        ("assistant", ["text"]),
        ("user", ["text"]),
        ("assistant", ["tool_use"]),
        ("user", ["tool_result"]),
        ("assistant", ["tool_use"]),
        ("user", ["tool_result"]),
    ]
    assert payload["messages"][5]["content"][0] == {"type": "tool_use", "id": "call_Q7mV3nR8tK2pL5wX9cB4dF6h",
                                                    "name": "apply_patch", "input": {"input": body["input"][9]["input"]}}
    assert [tool["name"] for tool in payload["tools"]] == ["shell_command", "update_plan", "apply_patch"]
    assert payload["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "thinking" not in payload  # the turn's tool calls are being answered: see the notes
    assert to_chat(body, provider="anthropic")[1] == [
        "dropped 2 reasoning items: not replayable to anthropic",
        "reasoning.effort not applied: anthropic needs the signed thinking of the turn whose tool calls are answered"]


def test_a_codex_turn_starting_with_the_users_message_thinks_on_anthropic():
    body = codex_request()
    body["input"] = body["input"][:6]  # up to "fix the failing test"
    payload = anthropic_body(body)
    assert payload["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert payload["max_tokens"] == 32000 and payload["stream"] is True


AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Tools for sub-agents.",
          "tools": [{"type": "function", "name": "close_agent", "description": "Close an agent.", "strict": False,
                     "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}},
                    {**PATCH, "name": "patch_agent"}]}


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
def test_a_namespaces_tools_are_functions_named_namespace__name(provider):
    chat, _ = to_chat({**BASE, "tools": [WEATHER, AGENTS]}, provider=provider)
    tools = {tool["function"]["name"]: tool["function"] for tool in chat["tools"]}
    assert list(tools) == ["get_weather", "multi_agent_v1__close_agent", "multi_agent_v1__patch_agent"]
    assert tools["multi_agent_v1__close_agent"]["description"] == "Close an agent.\n\n(In multi_agent_v1: Tools for sub-agents.)"
    assert tools["multi_agent_v1__close_agent"]["parameters"] == AGENTS["tools"][0]["parameters"]
    assert tools["multi_agent_v1__patch_agent"]["parameters"]["required"] == ["input"]  # custom: one string
    assert_valid_for_openai_sdk(chat)


def test_calls_of_a_namespaces_tools_go_back_by_their_chat_name():
    body = {**BASE, "tools": [AGENTS], "input": [
        {"type": "message", "role": "user", "content": "close it"},
        {"type": "function_call", "call_id": "call_1", "name": "close_agent", "namespace": "multi_agent_v1",
         "arguments": '{"target":"a1"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "closed"}]}
    chat, _ = to_chat(body, provider="vllm")
    assert chat["messages"][1]["tool_calls"][0]["function"] == {"name": "multi_agent_v1__close_agent",
                                                                "arguments": '{"target":"a1"}'}
    anthropic = AnthropicAdapter().build_request(TARGET, chat).json
    assert anthropic["tools"][0]["name"] == "multi_agent_v1__close_agent"
    assert anthropic["messages"][1]["content"][0]["name"] == "multi_agent_v1__close_agent"


@pytest.mark.parametrize(("group", "param"), [
    ({**AGENTS, "name": "multi agent"}, "tools[0].name"),
    ({**AGENTS, "tools": "close_agent"}, "tools[0].tools"),
    ({**AGENTS, "tools": [{"type": "web_search"}]}, "tools[0].tools[0].type"),
    ({**AGENTS, "tools": [AGENTS]}, "tools[0].tools[0].type"),
])
def test_a_namespace_that_cannot_be_offered_is_a_400_naming_the_field(group, param):
    assert refused({**BASE, "tools": [group]}).param == param
