"""A Responses request body -> a chat.completions body for the provider's adapter (openai-compatible
providers as it is, anthropic on to the Messages API), one function per field. The service sets `model`.

Responses request: https://platform.openai.com/docs/api-reference/responses/create
Chat request:      https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic.request import DEFAULT_MAX_TOKENS
from llms.inbound.responses.conversation import chat_messages
from llms.inbound.responses.tables import EFFORTS, NO_THINKING, thinking_budget
from llms.inbound.responses.tools import map_tools
from llms.inbound.responses.validation import STATEFUL
from mcpd.errors import InvalidRequest

Fields = dict[str, Any]
Notes = list[str]

# Fields translated below.
MAPPED = frozenset({
    "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens", "temperature",
    "top_p", "text", "reasoning", "stream", "user", "safety_identifier",
})

# Fields accepted and not sent, with the reason: none of them changes what the answer says.
IGNORED: dict[str, str] = {
    "model": "names the Llm, whose own model goes upstream (CONTRACT.md)",
    "store": "mcpd stores no responses (stateless); the Response says store: false",
    "include": "asks for extra output data: encrypted reasoning (only OpenAI makes it) and results of built-in "
    "tools, which mcpd never produces; logprobs are refused",
    "metadata": "tags for a stored response; echoed on the Response, not sent",
    "prompt_cache_key": "a cache-bucketing hint for OpenAI; the other providers cache prefixes on their own "
    "(Anthropic at cache_control breakpoints)",
    "prompt_cache_retention": "how long OpenAI keeps a prompt cache",
    "prompt_cache_options": "how OpenAI places prompt-cache breakpoints",
    "service_tier": "a latency/price tier of OpenAI's, not the answer; the Llm's account decides",
    "truncation": "mcpd never drops input: an input too long for the model gets the provider's 400, as "
    "with 'disabled'",
    "stream_options": "include_obfuscation pads OpenAI's deltas; mcpd's have no padding",
    "max_tool_calls": "limits calls of built-in tools, which are refused",
    "client_metadata": "Codex's tracing identifiers for OpenAI's logs",
}

# Known fields mcpd cannot honour: accepted only at their neutral value (absent, null, false, 0, empty),
# else a 400 naming them with the reason.
# (previous_response_id, conversation and background are refused on every path, the passthrough's too:
# validation.py.)
REFUSED: dict[str, str] = {
    "prompt": "prompt templates are stored at OpenAI",
    "context_management": "server-side compaction is OpenAI's",
    "moderation": "mcpd runs no moderation model",
    "top_logprobs": "log probabilities are not translated back",
}

# include values that would need more than mcpd gives: refused (the others are ignored, above).
REFUSED_INCLUDES = {"message.output_text.logprobs": "log probabilities are not translated back"}
INCLUDES = frozenset({
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url", "code_interpreter_call.outputs",
    "reasoning.encrypted_content", "message.output_text.logprobs",
})
TEXT_FIELDS = frozenset({"format", "verbosity"})
REASONING_IGNORED = frozenset({"summary", "generate_summary", "context"})  # how reasoning is shown or kept


def to_chat(body: dict[str, Any], *, provider: str, default_max_tokens: int | None = None) -> tuple[Fields, Notes]:
    """The chat.completions body (without model) for a Responses request body, and notes for the audit row.

    `default_max_tokens` is the Llm's (what the anthropic adapter sends when the client names no limit):
    a thinking budget for anthropic has to fit in it.
    """
    check_fields(body, provider)
    messages, notes = chat_messages(body.get("instructions"), body.get("input"), provider)
    chat: Fields = {"messages": messages}
    for mapper in (map_max_output_tokens, map_temperature, map_top_p, map_user, map_text):
        chat.update(mapper(body, provider))
    chat.update(map_tools(body, provider))
    chat.update(map_reasoning(body, provider, chat, notes, default_max_tokens))
    chat.update(map_stream(body, provider))
    return chat, notes


def _neutral(value: Any) -> bool:
    return value is None or value is False or (type(value) is int and value == 0) or value in ("", [], {})


def check_fields(body: dict[str, Any], provider: str) -> None:
    """Refuse fields mcpd cannot honour and fields it does not know (400 naming the field)."""
    for name, value in body.items():
        if name in MAPPED or name in IGNORED or name in STATEFUL:
            continue
        reason = REFUSED.get(name)
        if reason is None:
            raise InvalidRequest(f"{name}: unknown field, not supported for {provider}.", param=name)
        if not _neutral(value):
            raise InvalidRequest(f"{name}: not supported ({reason}).", param=name)
    check_include(body.get("include"))
    truncation = body.get("truncation")
    if truncation not in (None, "auto", "disabled"):
        raise InvalidRequest("truncation must be 'auto' or 'disabled'.", param="truncation")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict)
                                 or not all(isinstance(value, str) for value in metadata.values())):
        raise InvalidRequest("metadata must be an object of strings.", param="metadata")


def check_include(include: Any) -> None:
    """include: a list of known values; logprobs are refused."""
    if include is None:
        return
    if not isinstance(include, list):
        raise InvalidRequest("include must be a list.", param="include")
    for k, value in enumerate(include):
        if not isinstance(value, str) or value not in INCLUDES:
            raise InvalidRequest(f"include[{k}]: unknown value {value!r}.", param=f"include[{k}]")
        if value in REFUSED_INCLUDES:
            raise InvalidRequest(f"include[{k}]: {value!r} is not supported ({REFUSED_INCLUDES[value]}).",
                                 param=f"include[{k}]")


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    """A numeric field within [low, high], or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a number between {low:g} and {high:g}.", param=name)
    return value


def map_max_output_tokens(body: dict[str, Any], provider: str) -> Fields:
    """max_output_tokens -> max_completion_tokens for OpenAI, max_tokens for the others (anthropic's adapter
    reads either); both count reasoning tokens too, as max_output_tokens does."""
    value = body.get("max_output_tokens")
    if value is None:
        return {}
    if type(value) is not int or value < 1:
        raise InvalidRequest("max_output_tokens must be a positive integer.", param="max_output_tokens")
    # OpenAI refuses max_tokens for reasoning models; the other servers know max_tokens:
    # https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_completion_tokens
    return {"max_completion_tokens" if provider == "openai" else "max_tokens": value}


def map_temperature(body: dict[str, Any], provider: str) -> Fields:
    """temperature (0..2), passed on (the anthropic adapter clamps it to Anthropic's 0..1)."""
    value = _number(body, "temperature", 0, 2)
    return {} if value is None else {"temperature": value}


def map_top_p(body: dict[str, Any], provider: str) -> Fields:
    """top_p, passed on."""
    value = _number(body, "top_p", 0, 1)
    return {} if value is None else {"top_p": value}


def map_user(body: dict[str, Any], provider: str) -> Fields:
    """safety_identifier (or else the older user) -> user: who the end user is, for the provider's abuse
    checks (the anthropic adapter sends it as metadata.user_id)."""
    for name in ("safety_identifier", "user"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string.", param=name)
        if value:
            return {"user": value}
    return {}


def map_text(body: dict[str, Any], provider: str) -> Fields:
    """text.format -> response_format (json_schema flat -> nested under json_schema); text.verbosity is not
    sent: a length hint only OpenAI's GPT-5 chat models take (other servers refuse or ignore it, the anthropic
    adapter refuses it)."""
    text = body.get("text")
    if text is None:
        return {}
    if not isinstance(text, dict):
        raise InvalidRequest("text must be an object.", param="text")
    for name in text:
        if name not in TEXT_FIELDS:
            raise InvalidRequest(f"text.{name}: unknown field, not supported for {provider}.", param=f"text.{name}")
    if text.get("verbosity") not in (None, "low", "medium", "high"):
        raise InvalidRequest("text.verbosity must be 'low', 'medium' or 'high'.", param="text.verbosity")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    if kind != "json_schema":
        raise InvalidRequest("text.format.type must be 'text', 'json_object' or 'json_schema'.",
                             param="text.format.type")
    name, schema = fmt.get("name"), fmt.get("schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("text.format.name must be a non-empty string.", param="text.format.name")
    if not isinstance(schema, dict):
        raise InvalidRequest("text.format.schema must be a JSON Schema object.", param="text.format.schema")
    # https://platform.openai.com/docs/guides/structured-outputs
    spec: Fields = {"name": name, "schema": schema}
    for key, kinds in (("strict", bool), ("description", str)):
        value = fmt.get(key)
        if value is not None and not isinstance(value, kinds):
            raise InvalidRequest(f"text.format.{key} has the wrong type.", param=f"text.format.{key}")
        if value is not None:
            spec[key] = value
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def map_reasoning(body: dict[str, Any], provider: str, chat: Fields, notes: Notes,
                  default_max_tokens: int | None) -> Fields:
    """reasoning.effort -> Anthropic's thinking with a budget (THINKING_BUDGETS) for anthropic; nothing for
    the chat providers: reasoning_effort is refused by many chat models (those without reasoning, and most
    OpenAI-compatible servers), and a reasoning model reasons as its Llm is set up. reasoning.summary is not
    sent: the reasoning a provider gives comes back whole (as a summary_text)."""
    reasoning = body.get("reasoning")
    if reasoning is None:
        return {}
    if not isinstance(reasoning, dict):
        raise InvalidRequest("reasoning must be an object.", param="reasoning")
    for name in reasoning:
        if name not in ("effort", "mode") and name not in REASONING_IGNORED:
            raise InvalidRequest(f"reasoning.{name}: unknown field, not supported for {provider}.",
                                 param=f"reasoning.{name}")
    if reasoning.get("mode") not in (None, "standard"):
        raise InvalidRequest("reasoning.mode: only 'standard' is supported.", param="reasoning.mode")
    effort = reasoning.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in EFFORTS):
        raise InvalidRequest(f"reasoning.effort must be one of {', '.join(sorted(EFFORTS))}.",
                             param="reasoning.effort")
    if provider != "anthropic" or effort is None or effort in NO_THINKING:
        return {}
    return anthropic_thinking(effort, chat, notes, default_max_tokens)


def anthropic_thinking(effort: str, chat: Fields, notes: Notes, default_max_tokens: int | None) -> Fields:
    """thinking {"type": "enabled", "budget_tokens"} and the max_tokens it fits in, unless the request has
    what Anthropic refuses with thinking: then no thinking, noted (the rest of the request is what the
    client asked to be answered; effort only tunes how long the model deliberates).
    https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking"""
    conflict = thinking_conflict(chat)
    if conflict:
        notes.append(f"reasoning.effort not applied: {conflict}")
        return {}
    limit = chat.get("max_tokens") or default_max_tokens or DEFAULT_MAX_TOKENS
    budget = thinking_budget(effort, limit)
    if budget is None:
        notes.append(f"reasoning.effort not applied: max tokens {limit} leave no thinking budget of at least 1024 "
                     "(it may take half)")
        return {}
    return {"max_tokens": limit, "thinking": {"type": "enabled", "budget_tokens": budget}}


def thinking_conflict(chat: Fields) -> str:
    """Why Anthropic would refuse thinking with this chat body ("" when it would not)."""
    messages = [message for message in chat["messages"] if message["role"] == "assistant"]
    if messages and messages[-1].get("tool_calls"):
        # "When thinking is enabled, a final assistant message must start with a thinking block": its
        # reasoning cannot be replayed (no signature), so a tool loop goes on without thinking.
        return "anthropic needs the signed thinking of the turn whose tool calls are answered"
    choice = chat.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        return "anthropic does not force a tool call while thinking"
    if "response_format" in chat:
        return "anthropic answers text.format through a forced tool, which thinking does not allow"
    temperature, top_p = chat.get("temperature"), chat.get("top_p")
    if temperature is not None and temperature != 1:
        return "anthropic takes no temperature but 1 while thinking"
    if top_p is not None and top_p < 0.95:
        return "anthropic takes no top_p below 0.95 while thinking"
    return ""


def map_stream(body: dict[str, Any], provider: str) -> Fields:
    """stream: true -> stream with the usage chunk (its reasoning_tokens go into the Response's usage)."""
    value = body.get("stream")
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest("stream must be a boolean.", param="stream")
    return {"stream": True, "stream_options": {"include_usage": True}} if value else {}
