"""An Anthropic Messages reply -> an OpenAI chat.completion, plus the pieces the stream shares.

Anthropic reply: https://docs.anthropic.com/en/api/messages (200 response)
OpenAI object:   https://platform.openai.com/docs/api-reference/chat/object
"""

from __future__ import annotations

import json
import logging
from typing import Any

from llms.adapters.anthropic.tables import UNKNOWN_FINISH_REASON, finish_reason_of, prompt_tokens, token_count
from llms.adapters.anthropic.tools import RESPONSE_TOOL
from llms.adapters.base import ChatCompletion, Usage
from llms.adapters.errors import bad_response

log = logging.getLogger(__name__)


def finish_reason(stop_reason: str | None, called_tools: bool) -> str:
    """OpenAI's finish_reason: tool_calls whenever a client tool was called, else mapped from stop_reason."""
    if called_tools:
        return "tool_calls"
    if stop_reason == "tool_use":  # only the response_format tool was called: a plain answer
        return "stop"
    mapped = finish_reason_of(stop_reason)
    if mapped is None:
        log.warning("anthropic stop_reason %r mapped to %r", stop_reason, UNKNOWN_FINISH_REASON)
        return UNKNOWN_FINISH_REASON
    return mapped


def completion_id(message_id: Any) -> str:
    """A chat.completion id derived from Anthropic's message id."""
    return f"chatcmpl-{message_id}" if isinstance(message_id, str) and message_id else "chatcmpl-anthropic"


def openai_usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    """An OpenAI usage object."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def map_usage(usage: Any) -> tuple[dict[str, Any] | None, Usage]:
    """The OpenAI usage object and the audit Usage for an Anthropic `usage` (None when absent)."""
    if not isinstance(usage, dict):
        return None, Usage()
    prompt, completion = prompt_tokens(usage), token_count(usage, "output_tokens")
    cache_read, cache_write = (usage.get(name) if isinstance(usage.get(name), int) else None
                               for name in ("cache_read_input_tokens", "cache_creation_input_tokens"))
    return openai_usage(prompt, completion, cache_read or 0), Usage(prompt, completion, cache_read, cache_write)


class UsageTally:
    """Usage as an Anthropic stream reports it: message_start's counts, then each message_delta's, which
    are cumulative: a count present overwrites, it is never added.
    https://docs.anthropic.com/en/api/messages-streaming#event-types"""

    FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")

    def __init__(self) -> None:
        self.raw: dict[str, int] = {}
        self.usage = Usage()

    def update(self, usage: Any) -> Usage:
        """The audit Usage after this `usage` object (ignored unless an object)."""
        if isinstance(usage, dict):
            for name in self.FIELDS:
                value = usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    self.raw[name] = value
            has_input = any(name in self.raw for name in ("input_tokens", "cache_read_input_tokens"))
            self.usage = Usage(
                prompt_tokens=prompt_tokens(self.raw) if has_input else None,
                completion_tokens=self.raw.get("output_tokens"),
                cache_read_tokens=self.raw.get("cache_read_input_tokens"),
                cache_write_tokens=self.raw.get("cache_creation_input_tokens"),
            )
        return self.usage


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call for a tool_use block (arguments as a JSON string)."""
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})},
    }


def map_message(content: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The OpenAI assistant message for Anthropic content blocks, and whether a client tool was called."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    answer: str | None = None  # the response_format tool's input, as JSON text
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thoughts.append(block.get("thinking") or "")
        elif kind == "tool_use" and block.get("name") == RESPONSE_TOOL:
            answer = json.dumps(block.get("input") or {})
        elif kind == "tool_use":
            calls.append(tool_call(block))
        # redacted_thinking (encrypted) and server-tool blocks (mcpd sends no server tools): not shown
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if answer is not None:
        message["content"] = answer  # response_format: the JSON is the whole answer
    elif texts or not calls:
        message["content"] = "".join(texts)
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def parse_message(payload: Any, created: int) -> tuple[ChatCompletion, Usage]:
    """The OpenAI chat.completion and audit Usage for an Anthropic Message."""
    if not isinstance(payload, dict) or not isinstance(payload.get("content"), list):
        raise bad_response("anthropic", "a reply that is not a Message")
    message, called_tools = map_message([b for b in payload["content"] if isinstance(b, dict)])
    usage_body, usage = map_usage(payload.get("usage"))
    completion: ChatCompletion = {
        "id": completion_id(payload.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": payload.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(payload.get("stop_reason"), called_tools),
            }
        ],
    }
    if usage_body is not None:
        completion["usage"] = usage_body
    return completion, usage
