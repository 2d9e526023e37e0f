"""mcpd's errors once a Responses stream has begun: the `error` event and the failed Response's `error`.

Before the stream, errors are the contract's body, which is OpenAI's ({"error": {message, type, param,
code}}), as on every /v1 route. https://platform.openai.com/docs/api-reference/responses-streaming/error
"""

from __future__ import annotations

from typing import Any

from mcpd.errors import ApiError, RateLimited

# A failed Response's error.code is one of OpenAI's own (the SDK's ResponseError lists them); of those, a
# provider's limit is rate_limit_exceeded and anything else of mcpd or the provider server_error. Codex
# retries both, waiting for a rate limit as long as its message says ("try again in 20s").
RATE_LIMITED_CODE = "rate_limit_exceeded"
SERVER_ERROR_CODE = "server_error"


def response_error(error: ApiError) -> dict[str, str]:
    """The `error` of a failed Response: {code, message}."""
    if isinstance(error, RateLimited) or error.status == 429:
        message = error.message
        if error.retry_after and error.retry_after.isdigit():
            message = f"{message} Please try again in {error.retry_after}s."
        return {"code": RATE_LIMITED_CODE, "message": message}
    return {"code": SERVER_ERROR_CODE, "message": error.message}


def error_event(error: ApiError, sequence_number: int) -> dict[str, Any]:
    """The stream's `error` event: code, message and param at the top (as OpenAI sends it; a nested `error`
    object would make openai-python raise before the response.failed that follows). Its code is mcpd's own,
    the more precise one (e.g. upstream_stream_incomplete)."""
    return {"type": "error", "sequence_number": sequence_number, "code": error.code or error.type,
            "message": error.message, "param": error.param}
