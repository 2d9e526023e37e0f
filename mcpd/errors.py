"""The contract's error family: every non-2xx from /api/ and /v1/ is one of these bodies.

Pure: no Django, DRF or requests here, so that the adapters (pure translation) can raise them. The web
layer turns them into responses (mcpd/http.py) and maps framework exceptions onto them (mcpd/drf.py).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

# The vocabulary of `code` for failures of the provider (502 upstream_error, 504 timeout_error), one
# word per rule, whichever adapter or route meets it.
UPSTREAM_UNREACHABLE = "upstream_unreachable"  # connection refused, reset, DNS
UPSTREAM_AUTH_FAILED = "upstream_auth_failed"  # the provider refused mcpd's key (its 401/403)
UPSTREAM_SERVER_ERROR = "upstream_server_error"  # the provider's 5xx
UPSTREAM_OVERLOADED = "upstream_overloaded"  # 529, or an overloaded_error event
UPSTREAM_BAD_RESPONSE = "upstream_bad_response"  # not JSON, not the expected shape, a redirect
UPSTREAM_STREAM_INCOMPLETE = "upstream_stream_incomplete"  # the stream ended (or dropped) before its end
SECRET_UNAVAILABLE = "secret_unavailable"  # the Llm's key could not be resolved on the server
UPSTREAM_TIMEOUT = "upstream_timeout"  # no connection, or nothing read, within the timeouts


class ApiError(Exception):
    """Base of every error mcpd answers with: class-level status/type/code, per-instance message."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, retry_after: str | None = None,
                 detail: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.detail = detail  # for the audit row and logs only: server details the client need not see
        self.param = param  # the request field at fault, as OpenAI's clients read it

    def to_body(self) -> dict[str, Any]:
        """The contract's error body (OpenAI's shape: `param` names the field at fault, or null)."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """Response headers that travel with this error (Retry-After)."""
        return {"Retry-After": self.retry_after} if self.retry_after else {}


# A refusal's message starts with the field it concerns ("messages[2].role must be…", "'model' is
# required.", "top_k: not supported…"), a convention every check and adapter keeps: that is its `param`.
_FIELD_FIRST = re.compile(r"'?([a-z_][a-z0-9_]*(?:\[\d+\]|\.[a-z_][a-z0-9_]*)*)'?(?=[ :])")


class InvalidRequest(ApiError):
    status, type = 400, "invalid_request_error"

    def __init__(self, message: str, **kwargs: Any):
        super().__init__(message, **kwargs)
        if self.param is None and (field := _FIELD_FIRST.match(message)):
            self.param = field.group(1)


class AuthenticationFailed(ApiError):
    status, type = 401, "authentication_error"


class PermissionDenied(ApiError):
    status, type = 403, "permission_error"


class NotFound(ApiError):
    status, type = 404, "not_found_error"


class TooLarge(ApiError):
    status, type = 413, "request_too_large"


class UpgradeRequired(ApiError):
    status, type = 426, "invalid_request_error"


class RateLimited(ApiError):
    status, type = 429, "rate_limit_error"


class InternalError(ApiError):
    status, type = 500, "api_error"


class UnsupportedProvider(ApiError):
    status, type = 501, "unsupported_provider"


class UpstreamError(ApiError):
    status, type = 502, "upstream_error"


class Timeout(ApiError):
    status, type = 504, "timeout_error"


class ProviderRequestError(ApiError):
    """A provider's own 4xx (e.g. context too long): its status is kept, its message passed on."""

    type = "invalid_request_error"

    def __init__(self, message: str, *, status: int, code: str | None = None):
        super().__init__(message, code=code)
        self.status = status  # type: ignore[misc]
