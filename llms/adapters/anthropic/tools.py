"""OpenAI tools, tool_choice, parallel_tool_calls and response_format -> Anthropic tools and tool_choice.

Anthropic tool use: https://docs.anthropic.com/en/docs/build-with-claude/tool-use
"""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic.tables import anthropic_tool_choice
from llms.adapters.base import ChatRequest
from mcpd.errors import InvalidRequest

Fields = dict[str, Any]

# The forced tool that carries a response_format answer; client tools may not use this name.
RESPONSE_TOOL = "mcpd_json_response"
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_RESPONSE_TOOL_DESCRIPTION = (
    "Give your complete answer by calling this tool: its input is the JSON object the user asked for."
)


def map_tools_and_format(body: ChatRequest) -> Fields:
    """tools, tool_choice, parallel_tool_calls and response_format -> tools and tool_choice."""
    tools = map_tools(body.get("tools"))
    forced = response_format_tool(body.get("response_format"))
    disable_parallel = map_parallel_tool_calls(body)
    if forced is not None:
        return forced_tool_fields(forced, tools, body.get("thinking"))
    choice = map_tool_choice(body.get("tool_choice"), [tool["name"] for tool in tools])
    if not tools:  # auto/none without tools mean nothing; required/named were refused above
        return {}
    if disable_parallel:
        # https://docs.anthropic.com/en/docs/build-with-claude/tool-use#parallel-tool-use
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":  # {"type": "none"} cannot carry the flag
            choice["disable_parallel_tool_use"] = True
    return {"tools": tools, "tool_choice": choice} if choice else {"tools": tools}


def forced_tool_fields(forced: Fields, tools: list[Fields], thinking: Any) -> Fields:
    """The tools and tool_choice that force the response_format tool."""
    if tools:
        raise InvalidRequest("response_format cannot be combined with tools for anthropic.")
    if isinstance(thinking, dict) and thinking.get("type", "disabled") != "disabled":
        # With thinking only tool_choice auto/none is allowed, so the tool could not be forced:
        # https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking
        raise InvalidRequest("response_format cannot be combined with thinking for anthropic.")
    # JSON mode through a forced tool: https://docs.anthropic.com/en/docs/build-with-claude/tool-use#json-mode
    choice = {"type": "tool", "name": RESPONSE_TOOL, "disable_parallel_tool_use": True}
    return {"tools": [forced], "tool_choice": choice}


def map_parallel_tool_calls(body: ChatRequest) -> bool:
    """True when the client said parallel_tool_calls: false."""
    value = body.get("parallel_tool_calls")
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest("parallel_tool_calls must be a boolean.")
    return value is False


def map_tools(tools: Any) -> list[Fields]:
    """Anthropic tool definitions for OpenAI `tools`."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list.")
    return [tool_definition(tool, f"tools[{i}]") for i, tool in enumerate(tools)]


def tool_definition(tool: Any, where: str) -> Fields:
    """{name, description, input_schema} for one OpenAI function tool (`strict` is not sent)."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise InvalidRequest(f"{where}.type: only function tools are supported by anthropic.")
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.function.name must be a non-empty string.")
    if name == RESPONSE_TOOL:
        raise InvalidRequest(f"{where}.function.name {RESPONSE_TOOL!r} is reserved by mcpd.")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(f"{where}.function.parameters must be a JSON Schema object.")
    definition: Fields = {"name": name, "input_schema": parameters or dict(_EMPTY_SCHEMA)}
    description = function.get("description")
    if isinstance(description, str) and description.strip():
        definition["description"] = description
    return definition


def map_tool_choice(choice: Any, names: list[str]) -> Fields | None:
    """auto/required/none/named function -> auto/any/none/tool (None when the client sent none)."""
    if choice is None:
        return None
    mapped = anthropic_tool_choice(choice)
    if mapped is None:
        raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or a named function.")
    if mapped["type"] == "any" and not names:
        raise InvalidRequest("tool_choice: 'required' needs tools.")
    if mapped["type"] == "tool" and mapped["name"] not in names:
        raise InvalidRequest("tool_choice.function.name must name one of the tools.")
    return mapped


def response_format_tool(response_format: Any) -> Fields | None:
    """The forced tool whose input_schema is the requested JSON schema (None for plain text)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": RESPONSE_TOOL,
            "description": _RESPONSE_TOOL_DESCRIPTION,
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        return json_schema_tool(response_format.get("json_schema"))
    raise InvalidRequest("response_format.type must be 'text', 'json_object' or 'json_schema'.")


def json_schema_tool(spec: Any) -> Fields:
    """The forced tool for response_format json_schema: its schema must have an object at the root."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidRequest("response_format.json_schema must be an object with a name.")
    schema = spec.get("schema", {"type": "object"})
    # Anthropic tool input is always an object: https://docs.anthropic.com/en/api/messages#body-tools
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise InvalidRequest("response_format.json_schema.schema: anthropic needs a schema of type 'object'.")
    description = f"{_RESPONSE_TOOL_DESCRIPTION} It follows the schema {spec['name']!r}."
    if isinstance(spec.get("description"), str) and spec["description"].strip():
        description += f" {spec['description']}"
    return {"name": RESPONSE_TOOL, "description": description, "input_schema": schema}
