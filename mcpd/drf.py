"""Django and DRF exceptions mapped onto the contract's error family, and DRF's EXCEPTION_HANDLER."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from mcpd.auth import count_auth_failure
from mcpd.errors import (
    ApiError,
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
)

log = logging.getLogger(__name__)

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
    if isinstance(exc, drf_exceptions.APIException):  # 405, 406, 415…: the client's mistake when a 4xx
        error = ApiError(str(exc.detail)) if exc.status_code >= 500 else InvalidRequest(str(exc.detail))
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
        error = count_auth_failure(request, error)
    response = Response(error.to_body(), status=error.status, headers=error.headers())
    if isinstance(error, AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="mcpd"'
    response.api_error = error
    return response
