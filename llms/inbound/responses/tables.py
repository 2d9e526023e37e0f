"""What the Responses API and chat.completions (and, through the anthropic adapter, Anthropic's thinking)
call the same thing: the one copy of each correspondence of this translation, read by both directions.

Responses: https://platform.openai.com/docs/api-reference/responses
Chat:      https://platform.openai.com/docs/api-reference/chat
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from llms.adapters.base import Usage

log = logging.getLogger(__name__)

# --- finish_reason -> status ---

# https://platform.openai.com/docs/api-reference/responses/object#responses/object-incomplete_details
INCOMPLETE_REASONS: dict[str, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}
# A turn that called tools is simply completed in Responses (its output holds the calls).
COMPLETED_REASONS = frozenset({"stop", "tool_calls", "function_call"})


def status_of(finish_reason: Any) -> tuple[str, dict[str, str] | None]:
    """The Response's status and incomplete_details for a chat finish_reason; any other reason (or none)
    is completed, logged."""
    reason = INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    if reason is not None:
        return "incomplete", {"reason": reason}
    if finish_reason not in COMPLETED_REASONS:
        log.warning("chat finish_reason %r mapped to 'completed'", finish_reason)
    return "completed", None


# --- reasoning.effort -> Anthropic thinking ---

# budget_tokens of `thinking: {"type": "enabled"}` for each reasoning.effort; none and minimal send no
# thinking. Anthropic's minimum is 1024 and the budget counts toward max_tokens, of which it may take at
# most half here (the rest is for the answer):
# https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size
THINKING_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768, "max": 32768}
NO_THINKING = frozenset({"none", "minimal"})
EFFORTS = NO_THINKING | set(THINKING_BUDGETS)
MIN_THINKING_BUDGET = 1024


def thinking_budget(effort: str, max_tokens: int) -> int | None:
    """The thinking budget for an effort within max_tokens; None when none fits (or none is asked)."""
    wanted = THINKING_BUDGETS.get(effort)
    if wanted is None:
        return None
    budget = min(wanted, max_tokens // 2)
    return budget if budget >= MIN_THINKING_BUDGET else None


# --- usage ---
# Responses counts as chat does: input_tokens include the cached ones, output_tokens the reasoning ones.
# https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage


def response_usage(usage: Usage, reasoning_tokens: int | None = None) -> dict[str, Any] | None:
    """A Response's usage for the audit counts (None when the provider reported none)."""
    if usage.prompt_tokens is None and usage.completion_tokens is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens or 0,
                                 "cache_write_tokens": usage.cache_write_tokens or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens or 0},
        "total_tokens": prompt + completion,
    }


def reasoning_tokens_of(usage: Any) -> int | None:
    """completion_tokens_details.reasoning_tokens of a chat usage object, when it says."""
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    value = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# --- ids ---
# OpenAI's prefixes: resp_ (a Response), rs_ (reasoning), msg_ (message), fc_ (function call), ctc_ (custom
# tool call); call ids are call_. Items of one Response share its base, numbered by output_index, so a
# stream and the whole answer give the same ids.


def id_base(completion_id: Any) -> str:
    """The base of a Response's ids: the chat.completion's id without its prefix, or a new one."""
    if isinstance(completion_id, str) and completion_id:
        return completion_id.removeprefix("chatcmpl-")
    return uuid.uuid4().hex


def new_call_id() -> str:
    """A call_id for a tool call the provider gave no id."""
    return f"call_{uuid.uuid4().hex}"


ITEM_PREFIXES = {"reasoning": "rs", "message": "msg", "function_call": "fc", "custom_tool_call": "ctc"}


def item_id(kind: str, base: str, output_index: int) -> str:
    """The id of an output item."""
    return f"{ITEM_PREFIXES[kind]}_{base}_{output_index}"
