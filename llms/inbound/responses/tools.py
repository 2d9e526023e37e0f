"""Responses `tools`, `tool_choice` and `parallel_tool_calls` -> chat tools, tool_choice and
parallel_tool_calls, one function per kind.

Responses tools: https://platform.openai.com/docs/api-reference/responses/create#responses-create-tools
Function calling (custom tools too): https://platform.openai.com/docs/guides/function-calling
Chat tools:      https://platform.openai.com/docs/api-reference/chat/create#chat-create-tools
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from mcpd import wirejson
from mcpd.errors import InvalidRequest

Fields = dict[str, Any]

# A custom (free-form) tool takes one raw string; to a chat model it is a function of this one argument.
CUSTOM_INPUT = "input"
CUSTOM_NOTE = ("(mcpd offers this free-form tool as a function: call it with the tool's raw input as the "
               f"one string argument `{CUSTOM_INPUT}`.)")
GRAMMARS = {"lark": "Lark grammar", "regex": "regular expression"}
# A namespace's tools are offered to a chat model as functions named namespace__name (chat and Anthropic
# tool names allow letters, digits, _ and - only); its calls come back with the namespace apart again.
NAMESPACE_SEPARATOR = "__"
NAMESPACE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TOOL_CHOICE_MODES = ("none", "auto", "required")


class ChatTool(NamedTuple):
    """What a chat tool name stands for in the Responses request."""

    kind: str  # "function" or "custom"
    name: str
    namespace: str | None = None


def chat_name(name: str, namespace: str | None) -> str:
    """The chat function name of a Responses tool (of a namespace's: namespace__name)."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def chat_tools(request: dict[str, Any]) -> dict[str, ChatTool]:
    """The request's function and custom tools (a namespace's too) by the chat name they were offered as."""
    found: dict[str, ChatTool] = {}
    tools = request.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            for inner in tool["tools"]:
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    tool_name = chat_name(inner["name"], tool.get("name"))
                    found[tool_name] = ChatTool(str(inner.get("type")), inner["name"], tool.get("name"))
        elif tool.get("type") in ("function", "custom") and isinstance(tool.get("name"), str):
            found[tool["name"]] = ChatTool(tool["type"], tool["name"])
    return found


def map_tools(body: dict[str, Any], provider: str) -> Fields:
    """tools (function and custom, grouped in namespaces or not), tool_choice and parallel_tool_calls ->
    the chat fields."""
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("tools must be a list.", param="tools")
    functions: list[Fields] = []
    kinds: dict[str, str] = {}  # chat tool name -> "function" or "custom"
    for where, tool, function in _flattened(tools or [], provider):
        name = function["function"]["name"]
        if name in kinds:
            raise InvalidRequest(f"{where}.name: {name!r} names two tools.", param=f"{where}.name")
        kinds[name] = tool["type"]
        functions.append(function)
    choice, allowed = map_tool_choice(body.get("tool_choice"), kinds, provider)
    if allowed is not None:  # allowed_tools: the model may call only these, so only these are offered
        functions = [function for function in functions if function["function"]["name"] in allowed]
    if not functions:  # auto and none without tools mean nothing; required and named were refused
        return {}
    fields: Fields = {"tools": functions}
    if choice is not None:
        fields["tool_choice"] = choice
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("parallel_tool_calls must be a boolean.", param="parallel_tool_calls")
    if parallel is False:  # true is every provider's default
        fields["parallel_tool_calls"] = False
    return fields


def _flattened(tools: list[Any], provider: str) -> list[tuple[str, Fields, Fields]]:
    """Each function or custom tool, those of namespaces included: where it is, the tool, its chat tool."""
    found = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            found += namespace_tools(tool, where, provider)
        else:
            found.append((where, tool, chat_tool(tool, where, provider)))
    return found


def namespace_tools(group: Fields, where: str, provider: str) -> list[tuple[str, Fields, Fields]]:
    """A namespace's tools as chat functions named namespace__name, its description told in each."""
    namespace, tools = group.get("name"), group.get("tools")
    if not isinstance(namespace, str) or not NAMESPACE_NAME.fullmatch(namespace):
        raise InvalidRequest(f"{where}.name must be letters, digits, '_' or '-'.", param=f"{where}.name")
    if not isinstance(tools, list):
        raise InvalidRequest(f"{where}.tools must be a list.", param=f"{where}.tools")
    about = group.get("description")
    found = []
    for j, tool in enumerate(tools):
        place = f"{where}.tools[{j}]"
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            raise InvalidRequest(f"{place}.type: a namespace cannot hold a namespace.", param=f"{place}.type")
        function = chat_tool(tool, place, provider)["function"]
        function["name"] = chat_name(function["name"], namespace)
        if isinstance(about, str) and about:
            function["description"] = f"{function.get('description') or ''}\n\n(In {namespace}: {about})".lstrip()
        found.append((place, tool, {"type": "function", "function": function}))
    return found


def chat_tool(tool: Any, where: str, provider: str) -> Fields:
    """The chat function tool for a Responses function or custom tool; built-in tools are refused."""
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise InvalidRequest(f"{where} must be a tool object with a type.", param=where)
    kind = tool["type"]
    if kind not in ("function", "custom"):
        # web_search*, file_search, code_interpreter, computer*, image_generation, mcp, shell, local_shell,
        # apply_patch, tool_search, ...: OpenAI runs them or defines their calls; a chat model has neither.
        raise InvalidRequest(f"{where}.type: {kind!r} tools are OpenAI's built-in tools, not supported for "
                             f"{provider}; give function or custom tools.", param=f"{where}.type")
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name must be a non-empty string.", param=f"{where}.name")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"{where}.description must be a string.", param=f"{where}.description")
    return function_tool(tool, where) if kind == "function" else custom_tool(tool, where)


def function_tool(tool: Fields, where: str) -> Fields:
    """Responses' flat {name, description, parameters, strict} -> chat's nested function."""
    function: Fields = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    parameters = tool.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise InvalidRequest(f"{where}.parameters must be a JSON Schema object.", param=f"{where}.parameters")
        function["parameters"] = parameters
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"{where}.strict must be a boolean.", param=f"{where}.strict")
    if strict is True:  # sent only when asked: a chat server that cannot enforce it may refuse it
        function["strict"] = True
    # defer_loading, allowed_callers, output_schema: features of OpenAI's tool search and programmatic
    # calls, not sent.
    return {"type": "function", "function": function}


def custom_tool(tool: Fields, where: str) -> Fields:
    """A custom (free-form) tool -> a function taking one string, whose description tells the model what
    the string must be (the tool's format, its grammar included)."""
    description = tool.get("description") or ""
    schema = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string",
                                      "description": input_description(tool.get("format"), f"{where}.format")}},
        "required": [CUSTOM_INPUT],
    }
    text = f"{description}\n\n{CUSTOM_NOTE}" if description else CUSTOM_NOTE
    return {"type": "function", "function": {"name": tool["name"], "description": text, "parameters": schema}}


def input_description(fmt: Any, where: str) -> str:
    """What a custom tool's input must be: free text, or text in the tool's grammar (given whole: the
    model has to write in it)."""
    # https://platform.openai.com/docs/guides/function-calling#context-free-grammars
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return "The tool's raw input: free-form text, not JSON."
    if kind == "grammar":
        syntax, definition = fmt.get("syntax"), fmt.get("definition")
        if not isinstance(syntax, str) or syntax not in GRAMMARS:
            raise InvalidRequest(f"{where}.syntax must be 'lark' or 'regex'.", param=f"{where}.syntax")
        if not isinstance(definition, str) or not definition.strip():
            raise InvalidRequest(f"{where}.definition must be a non-empty string.", param=f"{where}.definition")
        return f"The tool's raw input (not JSON): text that matches this {GRAMMARS[syntax]}:\n{definition}"
    raise InvalidRequest(f"{where} must be {{'type': 'text'}} or {{'type': 'grammar', 'syntax', 'definition'}}.",
                         param=where)


def map_tool_choice(choice: Any, kinds: dict[str, str], provider: str) -> tuple[str | Fields | None, set[str] | None]:
    """Chat's tool_choice (None when absent), and the names allowed_tools keeps (None: all of them)."""
    if choice is None:
        return None, None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_MODES:
            raise InvalidRequest("tool_choice must be 'none', 'auto', 'required' or a tool.", param="tool_choice")
        if choice == "required" and not kinds:
            raise InvalidRequest("tool_choice: 'required' needs tools.", param="tool_choice")
        return choice, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str) or kinds.get(name) != kind:
            raise InvalidRequest(f"tool_choice.name must name one of the {kind} tools.", param="tool_choice.name")
        return {"type": "function", "function": {"name": name}}, None
    if kind == "allowed_tools":
        return allowed_tools(choice, kinds)
    if isinstance(kind, str):  # file_search, web_search_preview, computer_use_preview, mcp, shell, ...
        raise InvalidRequest(f"tool_choice.type: {kind!r} chooses a built-in tool, not supported for {provider}.",
                             param="tool_choice.type")
    raise InvalidRequest("tool_choice must be 'none', 'auto', 'required' or a tool.", param="tool_choice")


def allowed_tools(choice: Fields, kinds: dict[str, str]) -> tuple[str, set[str]]:
    """{"type": "allowed_tools", "mode", "tools"}: honoured by offering only those tools, with the mode as
    the tool_choice (the model may call nothing else either way)."""
    # https://platform.openai.com/docs/guides/function-calling#allowed-tools
    mode, tools = choice.get("mode"), choice.get("tools")
    if mode not in ("auto", "required"):
        raise InvalidRequest("tool_choice.mode must be 'auto' or 'required'.", param="tool_choice.mode")
    if not isinstance(tools, list) or not tools:
        raise InvalidRequest("tool_choice.tools must be a non-empty list.", param="tool_choice.tools")
    names = set()
    for k, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        name = tool.get("name") if isinstance(tool, dict) else None
        if kind not in ("function", "custom") or not isinstance(name, str) or kinds.get(name) != kind:
            raise InvalidRequest(f"tool_choice.tools[{k}] must name one of the function or custom tools.",
                                 param=f"tool_choice.tools[{k}]")
        names.add(name)
    return mode, names


def custom_arguments(value: str) -> str:
    """The chat arguments of a call of a custom tool: its raw input as the one string argument."""
    return wirejson.dumps({CUSTOM_INPUT: value}).decode()
