"""Anthropic error replies (HTTP and in-stream `error` events) mapped onto the contract's ApiError family."""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic.tables import ERROR_STATUSES
from llms.adapters.errors import error_for_status
from mcpd.errors import ApiError

PROVIDER = "anthropic"
_MAX_TEXT = 300  # a non-JSON body (e.g. a proxy's HTML page) is cut to this many characters


def error_parts(payload: Any) -> tuple[str | None, str]:
    """The provider's (error type, message) from a parsed JSON body, a text body or None."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            etype = error.get("type")
            message = error.get("message")
            return (etype if isinstance(etype, str) else None, message if isinstance(message, str) else "")
        return None, ""
    if isinstance(payload, str):
        return None, payload.strip()[:_MAX_TEXT]
    return None, ""


def error_from_status(
    status: int, payload: Any, retry_after: str | None, *, where: str | None = None
) -> ApiError:
    """The ApiError for an Anthropic non-2xx reply, per CONTRACT.md's error table."""
    etype, message = error_parts(payload)
    # 529 is Anthropic's "overloaded for everyone": https://docs.anthropic.com/en/api/errors
    return error_for_status(PROVIDER, status, message, retry_after,
                            detail=_describe(where or f"HTTP {status}", etype, message),
                            overloaded=etype == "overloaded_error")


def error_from_event(payload: Any) -> ApiError:
    """The ApiError for an in-stream `error` event, mapped by its error type like an HTTP reply."""
    # https://docs.anthropic.com/en/api/messages-streaming#error-events
    etype, _ = error_parts(payload)
    # In-stream errors carry only a type: the HTTP status Anthropic gives the same type.
    status = ERROR_STATUSES.get(etype or "", 502)
    return error_from_status(status, payload, None, where="mid-stream")


def _describe(where: str, etype: str | None, message: str) -> str:
    """One line naming the provider, where it failed, its error type and its message."""
    kind = f" {etype}" if etype else ""
    text = f": {message}" if message else ""
    return f"{PROVIDER} error ({where}){kind}{text}"
