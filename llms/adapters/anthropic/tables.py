"""What the Anthropic Messages API and OpenAI chat.completions call the same thing: the one copy of each
correspondence, read by both directions (llms/adapters/anthropic: a chat call to an Anthropic provider;
llms/inbound/messages: an Anthropic call to a chat provider).

Anthropic: https://docs.anthropic.com/en/api/messages
OpenAI:    https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

import re
from typing import Any

from llms.adapters.base import Usage

# --- stop_reason <-> finish_reason ---

# https://docs.anthropic.com/en/api/messages#response-stop-reason
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",  # the context filled up: the answer is cut short
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # A server-tool turn paused for the client to resend; mcpd sends no server tools, so a paused
    # turn is ended as it stands.
    "pause_turn": "stop",
}
# Any other (future) stop_reason, or none at all, ends the turn as "stop": never a raw Anthropic value.
UNKNOWN_FINISH_REASON = "stop"

# https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",  # OpenAI does not say whether a stop sequence matched, nor which one
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",  # the legacy functions API
    "content_filter": "refusal",
}
# Any other finish_reason, or none at all, ends the turn as "end_turn": never a raw OpenAI value.
UNKNOWN_STOP_REASON = "end_turn"


def finish_reason_of(stop_reason: str | None) -> str | None:
    """OpenAI's finish_reason for an Anthropic stop_reason; None for one not in the table."""
    return FINISH_REASONS.get(stop_reason or "")


def stop_reason_of(finish_reason: str | None, called_tools: bool) -> str | None:
    """Anthropic's stop_reason for an OpenAI finish_reason; None for a reason not in the table. A turn that
    called tools is tool_use when it ended normally (some servers say "stop" or nothing then), but stays
    max_tokens or refusal when it was cut short: a call cut off is not one to run."""
    mapped = STOP_REASONS.get(finish_reason or "")
    if called_tools and mapped in (None, "end_turn"):
        return "tool_use"
    return mapped


# --- tool_choice ---

# OpenAI's string forms -> Anthropic's `type`; a named function {"type": "function", "function": {"name"}}
# is Anthropic's {"type": "tool", "name"}. OpenAI's `parallel_tool_calls: false` is Anthropic's
# `disable_parallel_tool_use: true` on auto/any/tool (none cannot carry it).
# https://docs.anthropic.com/en/docs/build-with-claude/tool-use#forcing-tool-use
TOOL_CHOICE_TYPES: dict[str, str] = {"auto": "auto", "none": "none", "required": "any"}
OPENAI_TOOL_CHOICES: dict[str, str] = {anthropic: openai for openai, anthropic in TOOL_CHOICE_TYPES.items()}


def anthropic_tool_choice(choice: Any) -> dict[str, Any] | None:
    """Anthropic's tool_choice for an OpenAI one ('auto', 'none', 'required', a named function); None for
    anything else."""
    if isinstance(choice, str) and choice in TOOL_CHOICE_TYPES:
        return {"type": TOOL_CHOICE_TYPES[choice]}
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    return None


def openai_tool_choice(choice: Any) -> str | dict[str, Any] | None:
    """OpenAI's tool_choice for an Anthropic one (auto, any, none, tool with a name); None for anything
    else."""
    kind = choice.get("type") if isinstance(choice, dict) else None
    if isinstance(kind, str) and kind in OPENAI_TOOL_CHOICES:
        return OPENAI_TOOL_CHOICES[kind]
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None


# --- images ---

# https://docs.anthropic.com/en/docs/build-with-claude/vision: the only accepted image types.
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MEDIA_TYPE_ALIASES = {"image/jpg": "image/jpeg"}
# An OpenAI image_url part carries a base64 image as a data: URL: https://www.rfc-editor.org/rfc/rfc2397
_DATA_URL = re.compile(r"^data:(?P<media>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL)


def image_media_type(value: str) -> str | None:
    """The media type Anthropic accepts for this one (aliases resolved, any case), or None."""
    media = value.strip().lower()
    media = MEDIA_TYPE_ALIASES.get(media, media)
    return media if media in IMAGE_MEDIA_TYPES else None


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media type as written, lowercased; the base64 data) of a base64 data: URL; None for any other."""
    match = _DATA_URL.match(url)
    if match is None or ";base64" not in match["params"].lower():
        return None
    return match["media"].strip().lower(), match["data"].strip()


def data_url(media_type: str, data: str) -> str:
    """The data: URL of an Anthropic base64 image source, as an OpenAI image_url takes it."""
    return f"data:{media_type};base64,{data}"


# --- usage ---
# Anthropic's input_tokens exclude the prompt-cache reads and writes it reports apart; OpenAI's
# prompt_tokens include prompt_tokens_details.cached_tokens (OpenAI reports no cache writes).
# https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance
# https://platform.openai.com/docs/guides/prompt-caching


def token_count(usage: dict[str, Any], name: str) -> int:
    """One count of an Anthropic usage; 0 when absent or not a count."""
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def prompt_tokens(usage: dict[str, Any]) -> int:
    """OpenAI's prompt_tokens for an Anthropic usage: input + cache creation + cache read."""
    return (
        token_count(usage, "input_tokens")
        + token_count(usage, "cache_creation_input_tokens")
        + token_count(usage, "cache_read_input_tokens")
    )


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """Anthropic's usage for OpenAI counts: input = prompt - cached, cache reads when reported, output;
    0 for a count the provider did not give (Anthropic's usage always has input and output)."""
    cached = usage.cache_read_tokens
    body = {"input_tokens": max((usage.prompt_tokens or 0) - (cached or 0), 0)}
    if cached is not None:
        body["cache_read_input_tokens"] = cached
    body["output_tokens"] = usage.completion_tokens or 0
    return body


# --- error types ---

# The HTTP status Anthropic gives each error type: https://docs.anthropic.com/en/api/errors#http-errors
# (timeout_error: the SDK's GatewayTimeoutError).
ERROR_STATUSES: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
