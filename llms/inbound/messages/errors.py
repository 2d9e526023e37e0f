"""mcpd's errors in the Anthropic Messages API's shape, for /v1/messages (answers and stream events).

https://docs.anthropic.com/en/api/errors; CONTRACT.md "On /v1/messages errors take Anthropic's shape".
"""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic.tables import ERROR_STATUSES
from mcpd.errors import UPSTREAM_OVERLOADED, ApiError

# The contract's error type by HTTP status: Anthropic's own pairs, and mcpd's 502 (the provider failed) as
# Anthropic's api_error.
ERROR_TYPES: dict[int, str] = {status: etype for etype, status in ERROR_STATUSES.items()} | {502: "api_error"}


OVERLOADED = 529  # Anthropic's status for "overloaded for everyone", which its clients retry


def status_of(error: ApiError) -> int:
    """The HTTP status on this route: the contract's, but an overloaded provider stays 529."""
    return OVERLOADED if error.code == UPSTREAM_OVERLOADED else error.status


def error_type(error: ApiError) -> str:
    """The Anthropic error type for an ApiError: by its status, overloaded_error for an overloaded provider;
    another 4xx is invalid_request_error (as Anthropic uses it), another 5xx api_error."""
    if error.code == UPSTREAM_OVERLOADED:  # a 502 to chat clients; Anthropic's clients retry on this type
        return "overloaded_error"
    etype = ERROR_TYPES.get(error.status)
    if etype is not None:
        return etype
    return "invalid_request_error" if 400 <= error.status < 500 else "api_error"


def error_body(error: ApiError) -> dict[str, Any]:
    """The Anthropic error body: {"type": "error", "error": {"type", "message"}}."""
    return {"type": "error", "error": {"type": error_type(error), "message": error.message}}
