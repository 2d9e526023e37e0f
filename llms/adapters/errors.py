"""A provider's HTTP error status -> the contract's ApiError: one mapping for every adapter."""

from __future__ import annotations

from mcpd.errors import ApiError, ProviderRequestError, RateLimited, TooLarge, UpstreamError


def error_for_status(provider: str, status: int, message: str, retry_after: str | None, *,
                     detail: str | None = None, overloaded: bool = False) -> ApiError:
    """The contract's error for a provider's non-2xx reply.

    `message` is the provider's own text (passed on for 4xx); `detail` describes a server failure.
    """
    if 300 <= status < 400:
        # Redirects are not followed (llms/transport.py); what the redirect says is not passed on.
        return UpstreamError(f"The {provider} provider answered with a redirect (HTTP {status}), which mcpd "
                             "does not follow: check the Llm's base URL.", code="upstream_bad_response")
    detail = detail or f"{provider} error (HTTP {status}){': ' + message if message else ''}"
    if status in (401, 403):
        # Never echo the provider's auth text: the problem is mcpd's key, not the client's.
        return UpstreamError(f"{provider} refused mcpd's API key for this Llm (HTTP {status}).",
                             code="upstream_auth_failed")
    if status == 413:
        return TooLarge(message or f"The request is too large for {provider}.")
    if status == 429:
        return RateLimited(message or f"{provider} rate limit reached.", retry_after=retry_after)
    if 400 <= status < 500:
        # A provider's other 4xx (e.g. context too long) keep their status and message (contract).
        return ProviderRequestError(message or detail, status=status)
    if status == 529 or overloaded:
        return UpstreamError(detail, code="upstream_overloaded")
    if 500 <= status < 600:
        return UpstreamError(detail, code="upstream_server_error")
    return UpstreamError(detail, code="upstream_bad_response")
