"""What every Messages body must be, whatever the provider: enough for a clear 400 before any upstream
call, never rejecting a field a provider knows (a passthrough forwards the rest as it is).
https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any

from mcpd.errors import InvalidRequest

ROLES = frozenset({"user", "assistant", "system"})  # system: mid-conversation system messages


def check_request(body: dict[str, Any], *, counting: bool = False) -> None:
    """Raise InvalidRequest naming the first thing wrong (`counting`: a count_tokens body, which has no
    max_tokens)."""
    _check_messages(body.get("messages"))
    if not counting:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest("max_tokens: required, a positive integer.")
    for name, kinds, what in (("stream", bool, "a boolean"), ("system", str | list, "a string or a list of blocks"),
                              ("tools", list, "a list"), ("metadata", dict, "an object")):
        value = body.get(name)
        if value is not None and not isinstance(value, kinds):
            raise InvalidRequest(f"{name}: must be {what}.")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: required, a non-empty list.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}]: must be an object.")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequest(f"messages[{index}].role: must be 'user' or 'assistant'.")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequest(f"messages[{index}].content: must be a string or a list of blocks.")
        if isinstance(content, list) and not all(isinstance(block, dict) and "type" in block for block in content):
            raise InvalidRequest(f"messages[{index}].content: blocks must be objects with a 'type'.")
