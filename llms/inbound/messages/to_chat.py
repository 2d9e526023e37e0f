"""An Anthropic Messages request body -> a chat.completions body for an OpenAI-compatible provider (openai,
vllm, deepseek, ollama), one function per field. The service sets `model`; the passthrough adapter asks
for the stream's usage itself.

Anthropic request: https://docs.anthropic.com/en/api/messages
Chat request:      https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic.tables import openai_tool_choice
from llms.inbound.messages.conversation import chat_messages
from mcpd.errors import InvalidRequest

Fields = dict[str, Any]

# Fields translated below.
MAPPED = frozenset(
    {
        "messages",
        "system",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "tools",
        "tool_choice",
        "output_config",
        "output_format",
    }
)

# Fields accepted and not sent, with the reason: none of them changes what the answer says.
IGNORED: dict[str, str] = {
    "model": "names the Llm, whose own model goes upstream (CONTRACT.md)",
    "thinking": "how much a Claude model deliberates; a chat model reasons as its Llm is set up, and its "
    "reasoning still comes back as thinking blocks",
    "context_management": "Anthropic's server-side clearing of old thinking and tool results; the chat "
    "provider gets the conversation as sent (thinking blocks are dropped anyway)",
    "cache_control": "a prompt-caching hint (on blocks too); OpenAI-compatible providers cache prefixes "
    "on their own",
    "service_tier": "a capacity tier of Anthropic's, not the answer; the Llm's account decides",
    "speed": "Anthropic's fast mode (price and latency), not the answer",
    "diagnostics": "prompt-cache reporting to Anthropic",
}

# Known Anthropic fields a chat provider cannot honour: accepted only when absent, null or empty, else a
# 400 naming them with the reason.
REFUSED: dict[str, str] = {
    "container": "a code-execution container; chat providers run no server-side tools",
    "mcp_servers": "Anthropic's MCP connector; a chat provider cannot call MCP servers",
    "inference_geo": "a data-residency requirement mcpd cannot guarantee for another provider",
}

# output_config members that only tune how long a Claude model works: accepted and not sent (`format` is
# translated; any other member is refused as unknown).
IGNORED_OUTPUT_CONFIG: dict[str, str] = {
    "effort": "how hard a Claude model thinks; a chat model's effort is its Llm's (OpenAI refuses "
    "reasoning_effort for models without reasoning)",
    "task_budget": "a token budget a Claude model paces an agentic task by",
}

JSON_SCHEMA_NAME = "response"  # OpenAI's json_schema needs a name; Anthropic's format has none


def to_chat(body: dict[str, Any], *, provider: str) -> Fields:
    """The chat.completions body (without model) for an Anthropic Messages request body."""
    check_fields(body, provider)
    chat: Fields = {"messages": chat_messages(body.get("system"), body.get("messages"), provider)}
    chat.update(map_prefill(chat["messages"], provider))
    for mapper in (
        map_max_tokens,
        map_temperature,
        map_top_p,
        map_top_k,
        map_stop_sequences,
        map_metadata,
        map_tools,
        map_output_format,
        map_stream,
    ):
        chat.update(mapper(body, provider))
    return chat


def check_fields(body: dict[str, Any], provider: str) -> None:
    """Refuse fields the provider cannot honour and fields mcpd does not know (400 naming the field)."""
    for name, value in body.items():
        if name in MAPPED or name in IGNORED:
            continue
        reason = REFUSED.get(name)
        if reason is None:
            raise InvalidRequest(f"{name}: unknown field, not supported for {provider}.")
        if value not in (None, [], {}):
            raise InvalidRequest(f"{name}: not supported for {provider} ({reason}).")
    thinking = body.get("thinking")
    if thinking is not None and (not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str)):
        raise InvalidRequest("thinking must be an object with a type.")


def map_prefill(messages: list[Fields], provider: str) -> Fields:
    """A last assistant message is a prefill the answer continues: vLLM can, the others cannot."""
    if not messages or messages[-1]["role"] != "assistant":
        return {}
    if provider == "vllm":
        # https://docs.vllm.ai/en/stable/serving/openai_compatible_server.html#chat-api (extra parameters)
        return {"continue_final_message": True, "add_generation_prompt": False}
    raise InvalidRequest(
        f"messages: a final assistant message (a prefill to continue) is not supported for {provider}."
    )


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    """A numeric field within [low, high], or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a number between {low:g} and {high:g}.")
    return value


def map_max_tokens(body: dict[str, Any], provider: str) -> Fields:
    """max_tokens (required by Anthropic) -> max_completion_tokens for OpenAI, max_tokens for the others."""
    value = body.get("max_tokens")
    if type(value) is not int or value < 1:
        raise InvalidRequest("max_tokens: a positive integer is required.")
    # OpenAI deprecated max_tokens and refuses it for reasoning models; the other servers know max_tokens:
    # https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_completion_tokens
    return {"max_completion_tokens" if provider == "openai" else "max_tokens": value}


def map_temperature(body: dict[str, Any], provider: str) -> Fields:
    """temperature (Anthropic's 0..1), passed on."""
    value = _number(body, "temperature", 0, 1)
    return {} if value is None else {"temperature": value}


def map_top_p(body: dict[str, Any], provider: str) -> Fields:
    """top_p, passed on."""
    value = _number(body, "top_p", 0, 1)
    return {} if value is None else {"top_p": value}


def map_top_k(body: dict[str, Any], provider: str) -> Fields:
    """top_k: vLLM takes it as an extra sampling parameter; the others have none, so it is refused."""
    value = body.get("top_k")
    if value is None:
        return {}
    if type(value) is not int or value < 0:
        raise InvalidRequest("top_k must be a non-negative integer.")
    if provider != "vllm":
        raise InvalidRequest(f"top_k: not supported for {provider} (it would change the answer).")
    # https://docs.vllm.ai/en/stable/serving/openai_compatible_server.html#extra-parameters
    return {"top_k": value}


def map_stop_sequences(body: dict[str, Any], provider: str) -> Fields:
    """stop_sequences -> stop."""
    value = body.get("stop_sequences")
    if value is None or value == []:
        return {}
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest("stop_sequences must be a list of strings.")
    return {"stop": value}


def map_metadata(body: dict[str, Any], provider: str) -> Fields:
    """metadata.user_id -> user (the only member Anthropic's metadata has)."""
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object.")
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidRequest("metadata.user_id must be a string.")
    return {"user": user_id} if user_id else {}


def map_tools(body: dict[str, Any], provider: str) -> Fields:
    """tools -> function tools; tool_choice and disable_parallel_tool_use -> tool_choice and
    parallel_tool_calls."""
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("tools must be a list.")
    functions = [function_tool(tool, f"tools[{i}]", provider) for i, tool in enumerate(tools or [])]
    choice, parallel = map_tool_choice(body.get("tool_choice"), [f["function"]["name"] for f in functions])
    if not functions:  # auto and none without tools mean nothing; any and tool were refused
        return {}
    fields: Fields = {"tools": functions}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is False:
        fields["parallel_tool_calls"] = False
    return fields


def function_tool(tool: Any, where: str, provider: str) -> Fields:
    """A chat function tool for an Anthropic custom tool; server tools (typed) are refused."""
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{where} must be an object.")
    kind = tool.get("type")
    if kind not in (None, "custom"):
        # web_search_*, web_fetch_*, code_execution_*, bash_*, text_editor_*, computer_*, memory_*,
        # tool_search_*, mcp_toolset: Anthropic runs them or defines their schema; a chat model cannot.
        raise InvalidRequest(f"{where}.type: {kind!r} tools are not supported for {provider}.")
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name must be a non-empty string.")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}.input_schema must be a JSON Schema object.")
    function: Fields = {"name": name}
    description = tool.get("description")
    if isinstance(description, str) and description:
        function["description"] = description
    function["parameters"] = schema
    if tool.get("strict") is True:  # both mean: the arguments follow the schema exactly
        function["strict"] = True
    # cache_control, defer_loading, input_examples, eager_input_streaming, allowed_callers: Anthropic's
    # tool-use features (caching, tool search, examples, streaming, programmatic calls), not sent.
    return {"type": "function", "function": function}


def map_tool_choice(choice: Any, names: list[str]) -> tuple[str | Fields | None, bool | None]:
    """Chat's tool_choice (None when absent) and parallel_tool_calls (False for disable_parallel_tool_use)."""
    if choice is None:
        return None, None
    mapped = openai_tool_choice(choice)
    if mapped is None:
        raise InvalidRequest("tool_choice must be {'type': 'auto' | 'any' | 'none'} or {'type': 'tool', 'name'}.")
    if mapped == "required" and not names:
        raise InvalidRequest("tool_choice: 'any' needs tools.")
    if isinstance(mapped, dict) and mapped["function"]["name"] not in names:
        raise InvalidRequest("tool_choice.name must name one of the tools.")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise InvalidRequest("tool_choice.disable_parallel_tool_use must be a boolean.")
    return mapped, (False if disable and mapped != "none" else None)


def map_output_format(body: dict[str, Any], provider: str) -> Fields:
    """output_config.format (or the older output_format) -> response_format json_schema, strict as
    Anthropic's structured outputs are; output_config's effort and task_budget are not sent."""
    # https://platform.claude.com/docs/en/build-with-claude/structured-outputs
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise InvalidRequest("output_config must be an object.")
    for name in config or {}:
        if name != "format" and name not in IGNORED_OUTPUT_CONFIG:
            raise InvalidRequest(f"output_config.{name}: unknown field, not supported for {provider}.")
    fmt, where = (config or {}).get("format"), "output_config.format"
    if body.get("output_format") is not None:
        if fmt is not None:
            raise InvalidRequest("output_format: give output_config.format alone.")
        fmt, where = body["output_format"], "output_format"
    if fmt is None:
        return {}
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest(f"{where} must be {{'type': 'json_schema', 'schema': {{...}}}}.")
    # https://platform.openai.com/docs/guides/structured-outputs
    schema = {"name": JSON_SCHEMA_NAME, "schema": fmt["schema"], "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": schema}}


def map_stream(body: dict[str, Any], provider: str) -> Fields:
    """stream: true -> stream: true (the passthrough adapter adds stream_options.include_usage)."""
    value = body.get("stream")
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest("stream must be a boolean.")
    return {"stream": True} if value else {}
