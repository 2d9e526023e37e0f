"""The contract's error family: every non-2xx from /api/ and /v1/ is one of these bodies."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error mcpd answers with: class-level status/type/code, per-instance message."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, retry_after: str | None = None,
                 detail: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.detail = detail  # for the audit row and logs only: server details the client need not see

    def to_body(self) -> dict[str, Any]:
        """The contract's error body."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """Response headers that travel with this error (Retry-After)."""
        return {"Retry-After": self.retry_after} if self.retry_after else {}

    def to_response(self) -> JsonResponse:
        """A plain Django response carrying this error."""
        return JsonResponse(self.to_body(), status=self.status, headers=self.headers())


class InvalidRequest(ApiError):
    status, type = 400, "invalid_request_error"


class AuthenticationFailed(ApiError):
    status, type = 401, "authentication_error"


class PermissionDenied(ApiError):
    status, type = 403, "permission_error"


class NotFound(ApiError):
    status, type = 404, "not_found_error"


class TooLarge(ApiError):
    status, type = 413, "request_too_large"


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


_DRF_MAP: dict[type[Exception], type[ApiError]] = {
    drf_exceptions.ParseError: InvalidRequest,
    drf_exceptions.ValidationError: InvalidRequest,
    drf_exceptions.UnsupportedMediaType: InvalidRequest,
    drf_exceptions.AuthenticationFailed: AuthenticationFailed,
    drf_exceptions.NotAuthenticated: AuthenticationFailed,
    drf_exceptions.PermissionDenied: PermissionDenied,
    drf_exceptions.NotFound: NotFound,
    drf_exceptions.Throttled: RateLimited,
}


def to_api_error(exc: Exception) -> ApiError | None:
    """Map a DRF or Django exception onto the ApiError family; None for an unexpected one."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Http404):
        return NotFound("Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied("You do not have permission to perform this action.")
    for drf_type, api_type in _DRF_MAP.items():
        if isinstance(exc, drf_type):
            detail = exc.detail  # type: ignore[attr-defined]
            message = detail if isinstance(detail, str) else _flatten(detail)
            error = api_type(str(message))
            if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
                error.retry_after = str(int(exc.wait))
            return error
    if isinstance(exc, drf_exceptions.APIException):
        error = ApiError(str(exc.detail))
        error.status = exc.status_code  # type: ignore[misc]
        return error
    return None


def _flatten(detail: Any) -> str:
    """One readable line from DRF's nested validation detail."""
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error leaves in the contract's shape; 401s count against the address.

    The error sent rides on the response as `api_error` (a 401 may have become a 429), for the audit row.
    """
    error = to_api_error(exc)
    if error is None:
        log.exception("unhandled error in %s", context.get("view").__class__.__name__)
        error = InternalError("Internal server error.")
    request = context.get("request")
    if isinstance(error, AuthenticationFailed) and request is not None:
        from mcpd.auth import count_auth_failure  # mcpd.auth imports this module

        error = count_auth_failure(request, error)
    response = Response(error.to_body(), status=error.status, headers=error.headers())
    if isinstance(error, AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="mcpd"'
    response.api_error = error
    return response
