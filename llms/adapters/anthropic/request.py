"""An OpenAI chat.completions body -> an Anthropic Messages request body, one function per field.

Anthropic request: https://docs.anthropic.com/en/api/messages
OpenAI request:    https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llms.adapters.anthropic.messages import map_messages
from llms.adapters.anthropic.tools import map_tools_and_format
from llms.adapters.base import ChatRequest, Target
from mcpd.errors import InvalidRequest

Fields = dict[str, Any]

# Anthropic requires max_tokens; used when neither the client nor the Llm names one.
DEFAULT_MAX_TOKENS = 4096

# Client fields translated below (top_k and thinking are Anthropic extensions passed on as such).
MAPPED = frozenset(
    {
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "user",
        "safety_identifier",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "thinking",
    }
)

# Client fields that do not change the answer: accepted and not sent, with the reason.
IGNORED: dict[str, str] = {
    "model": "the Llm's own model goes upstream, never the client's (CONTRACT.md)",
    "store": "asks OpenAI to keep the completion; nothing is stored at the provider",
    "metadata": "tags for OpenAI's stored completions; Anthropic's metadata only takes user_id",
    "service_tier": "a latency/price tier, not the answer; the Llm's account decides",
    "prediction": "a predicted output only speeds OpenAI up; the answer is the same",
    "prompt_cache_key": "a caching hint; Anthropic caches through cache_control instead",
    "prompt_cache_retention": "a caching hint; Anthropic caches through cache_control instead",
}


def _is_none(value: Any) -> bool:
    return value is None


def _is_zero(value: Any) -> bool:
    return value is None or (not isinstance(value, bool) and value == 0)


# Client fields that would change the answer and that Anthropic cannot honour: accepted only at
# their neutral value, otherwise a 400 naming them. Anthropic's own OpenAI layer silently ignores
# most of these (https://docs.anthropic.com/en/api/openai-sdk); mcpd refuses instead.
REFUSED: dict[str, Callable[[Any], bool]] = {
    "n": lambda value: value is None or (type(value) is int and value == 1),
    "logprobs": lambda value: value is None or value is False,
    "top_logprobs": _is_zero,
    "logit_bias": lambda value: value is None or value == {},
    "presence_penalty": _is_zero,
    "frequency_penalty": _is_zero,
    "seed": _is_none,  # Anthropic has no deterministic sampling
    "audio": _is_none,
    "modalities": lambda value: value is None or value == ["text"],
    "reasoning_effort": _is_none,  # use the `thinking` extension instead
    "verbosity": _is_none,
    "web_search_options": _is_none,
    "functions": lambda value: not value,  # the legacy API: use tools
    "function_call": _is_none,
}


def build_body(target: Target, body: ChatRequest) -> Fields:
    """The Anthropic Messages request body for a client's chat.completions body."""
    check_fields(body)
    system, messages = map_messages(body["messages"])
    payload: Fields = {"model": target.model, "max_tokens": map_max_tokens(body, target.default_max_tokens)}
    if system:
        payload["system"] = system
    payload["messages"] = messages
    for mapper in (
        map_temperature,
        map_top_p,
        map_top_k,
        map_stop,
        map_metadata,
        map_thinking,
        map_tools_and_format,
        map_stream,
    ):
        payload.update(mapper(body))
    return payload


def check_fields(body: ChatRequest) -> None:
    """Refuse fields Anthropic cannot honour and fields mcpd does not know (400 naming the field)."""
    for name, value in body.items():
        if name in MAPPED or name in IGNORED:
            continue
        is_neutral = REFUSED.get(name)
        if is_neutral is None:
            raise InvalidRequest(f"{name}: unknown field, not supported for anthropic.")
        if not is_neutral(value):
            raise InvalidRequest(f"{name}: not supported by anthropic (it would change the answer).")


def _number(body: ChatRequest, name: str, low: float, high: float) -> float | None:
    """A numeric field within [low, high], or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a number between {low:g} and {high:g}.")
    return value


def _positive_int(body: ChatRequest, name: str) -> int | None:
    """A positive integer field, or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise InvalidRequest(f"{name} must be a positive integer.")
    return value


def map_max_tokens(body: ChatRequest, default: int | None) -> int:
    """max_completion_tokens ?? max_tokens ?? the Llm's default ?? 4096 (Anthropic requires one)."""
    # https://docs.anthropic.com/en/api/messages#body-max-tokens: required, unlike OpenAI's.
    completion = _positive_int(body, "max_completion_tokens")
    legacy = _positive_int(body, "max_tokens")
    for value in (completion, legacy, default):
        if value is not None:
            return value
    return DEFAULT_MAX_TOKENS


def map_temperature(body: ChatRequest) -> Fields:
    """temperature, clamped to Anthropic's 0..1 range (OpenAI allows 0..2)."""
    # Anthropic's own OpenAI layer caps it at 1 too: https://docs.anthropic.com/en/api/openai-sdk
    value = _number(body, "temperature", 0, 2)
    return {} if value is None else {"temperature": min(value, 1.0)}


def map_top_p(body: ChatRequest) -> Fields:
    """top_p, passed on."""
    value = _number(body, "top_p", 0, 1)
    return {} if value is None else {"top_p": value}


def map_top_k(body: ChatRequest) -> Fields:
    """top_k: no OpenAI field, accepted as an Anthropic extension."""
    value = body.get("top_k")
    if value is None:
        return {}
    if type(value) is not int or value < 0:
        raise InvalidRequest("top_k must be a non-negative integer.")
    return {"top_k": value}


def map_stop(body: ChatRequest) -> Fields:
    """stop (a string or a list) -> stop_sequences."""
    stop = body.get("stop")
    sequences = [stop] if isinstance(stop, str) else stop
    if sequences is None or sequences == []:
        return {}
    if not isinstance(sequences, list) or not all(isinstance(item, str) for item in sequences):
        raise InvalidRequest("stop must be a string or a list of strings.")
    # Anthropic refuses whitespace-only stop sequences; dropping one would change the answer.
    if any(not item.strip() for item in sequences):
        raise InvalidRequest("stop: anthropic does not accept empty or whitespace-only stop sequences.")
    return {"stop_sequences": sequences}


def map_metadata(body: ChatRequest) -> Fields:
    """user (or else safety_identifier) -> metadata.user_id."""
    # https://docs.anthropic.com/en/api/messages#body-metadata-user-id
    for name in ("user", "safety_identifier"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string.")
        return {"metadata": {"user_id": value}} if value else {}
    return {}


def map_thinking(body: ChatRequest) -> Fields:
    """thinking: Anthropic's extended-thinking switch, accepted as an extension and passed on."""
    # https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking
    thinking = body.get("thinking")
    if thinking is None:
        return {}
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise InvalidRequest("thinking must be an object with a type.")
    return {"thinking": thinking}


def map_stream(body: ChatRequest) -> Fields:
    """stream: true -> upstream stream: true (stream_options only shape mcpd's own output)."""
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object.")
    return {"stream": True} if body.get("stream") is True else {}
