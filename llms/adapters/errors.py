"""A provider's HTTP error status -> the contract's ApiError: one mapping for every adapter."""

from __future__ import annotations

from typing import Any

from mcpd import wirejson
from mcpd.errors import (
    UPSTREAM_AUTH_FAILED,
    UPSTREAM_BAD_RESPONSE,
    UPSTREAM_OVERLOADED,
    UPSTREAM_SERVER_ERROR,
    ApiError,
    ProviderRequestError,
    RateLimited,
    TooLarge,
    UpstreamError,
)


def error_for_status(provider: str, status: int, message: str, retry_after: str | None, *,
                     detail: str | None = None, overloaded: bool = False) -> ApiError:
    """The contract's error for a provider's non-2xx reply.

    `message` is the provider's own text (passed on for 4xx); `detail` describes a server failure.
    """
    if 300 <= status < 400:
        # Redirects are not followed (llms/transport.py); what the redirect says is not passed on.
        return UpstreamError(f"The {provider} provider answered with a redirect (HTTP {status}), which mcpd "
                             "does not follow: check the Llm's base URL.", code=UPSTREAM_BAD_RESPONSE)
    detail = detail or f"{provider} error (HTTP {status}){': ' + message if message else ''}"
    if status in (401, 403):
        # Never echo the provider's auth text: the problem is mcpd's key, not the client's.
        return UpstreamError(f"{provider} refused mcpd's API key for this Llm (HTTP {status}).",
                             code=UPSTREAM_AUTH_FAILED)
    if status == 413:
        return TooLarge(message or f"The request is too large for {provider}.")
    if status == 429:
        return RateLimited(message or f"{provider} rate limit reached.", retry_after=retry_after)
    if 400 <= status < 500:
        # A provider's other 4xx (e.g. context too long) keep their status and message (contract).
        return ProviderRequestError(message or detail, status=status)
    if status == 529 or overloaded:
        return UpstreamError(detail, code=UPSTREAM_OVERLOADED)
    if 500 <= status < 600:
        return UpstreamError(detail, code=UPSTREAM_SERVER_ERROR)
    return UpstreamError(detail, code=UPSTREAM_BAD_RESPONSE)


def bad_response(provider: str, what: str) -> UpstreamError:
    """A reply of the provider that is not what its API promises (502 upstream_bad_response)."""
    return UpstreamError(f"The {provider} provider sent {what}.", code=UPSTREAM_BAD_RESPONSE)


def event_json(data: str, provider: str) -> dict[str, Any]:
    """A stream event's JSON object; anything else is a malformed reply."""
    try:
        value = wirejson.loads(data)
    except ValueError:
        raise bad_response(provider, "a stream event that is not JSON") from None
    if not isinstance(value, dict):
        raise bad_response(provider, "a stream event that is not a JSON object")
    return value
