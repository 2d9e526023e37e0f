"""Bearer authentication with API tokens (stored hashed), for DRF views and plain Django views alike.

Failed authentications are throttled per address: once an address has used up
MCPD_API_MAX_AUTH_FAILURES_PER_ADDRESS in its window, it gets 429 until the window ends.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from mcpd import throttle
from mcpd.errors import ApiError, AuthenticationFailed, RateLimited
from mcpd.memo import TtlMemo
from mcpd.models import ApiToken, digest

log = logging.getLogger(__name__)

# Addresses this process has learned, from the shared count, to be blocked: refused before any token
# lookup, so a blocked address costs no query. The count in the database alone decides a block.
blocked_addresses = throttle.BlockMemo()


# Known tokens with their users, for MCPD_AUTH_CACHE_SECONDS: revoked, expired and inactive are
# checked on them at every call, as they stood when loaded.
_tokens = TtlMemo()


def _bearer_parts(header: bytes) -> list[bytes] | None:
    parts = header.split()
    return parts if parts and parts[0].lower() == b"bearer" else None


def authenticate_bearer(header: bytes | str) -> tuple[object, ApiToken] | None:
    """(user, token) for an `Authorization: Bearer …` header; None when there is no bearer header.

    Raises AuthenticationFailed for an unknown, revoked or expired token or an inactive user.
    """
    if isinstance(header, str):
        header = header.encode("latin-1")
    parts = _bearer_parts(header)
    if parts is None:
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer TOKEN'.")
    try:
        plaintext = parts[1].decode()
    except UnicodeDecodeError:
        raise AuthenticationFailed("Invalid API token.") from None
    sha256 = digest(plaintext)
    try:
        token = _tokens.get(sha256, lambda: ApiToken.objects.select_related("user").get(sha256=sha256))
    except ApiToken.DoesNotExist:
        raise AuthenticationFailed("Invalid API token.") from None
    if token.revoked:
        raise AuthenticationFailed("This API token has been revoked.")
    if token.is_expired:
        raise AuthenticationFailed("This API token has expired.")
    if not token.user.is_active:
        raise AuthenticationFailed("The user of this API token is inactive.")
    token.touch()
    return token.user, token


class BearerTokenAuthentication(BaseAuthentication):
    """DRF authentication class: `Authorization: Bearer TOKEN`; request.auth is the ApiToken."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        if _bearer_parts(header) is not None:
            refuse_blocked_address(request)
        return authenticate_bearer(header)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="mcpd"'


class ApiKeyHeaderAuthentication(BaseAuthentication):
    """`x-api-key: TOKEN`, as the Anthropic SDKs send an mcpd token (Claude Code may send it beside
    `Authorization: Bearer`, which is tried first)."""

    def authenticate(self, request):
        key = request.META.get("HTTP_X_API_KEY")
        if not key:
            return None
        refuse_blocked_address(request)
        return authenticate_bearer(b"Bearer " + key.encode("latin-1", "replace"))

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="mcpd"'


def auth_failure_limit() -> throttle.Limit:
    """The per-address limit on failed API authentications, from the settings."""
    return throttle.Limit("api-auth-address", settings.API_MAX_AUTH_FAILURES_PER_ADDRESS,
                          settings.API_AUTH_LOCKOUT_SECONDS)


def _too_many(until: float, detail: str) -> RateLimited:
    retry_after = throttle.seconds_until(until)
    return RateLimited(f"Too many failed authentication attempts from this address; try again in "
                       f"{retry_after} seconds.", code="rate_limited", retry_after=str(retry_after), detail=detail)


def refuse_blocked_address(request) -> None:
    """Raise 429 when this process knows the caller's address is blocked; never a query."""
    until = blocked_addresses.blocked_until(throttle.address_of(request))
    if until is not None:
        raise _too_many(until, "Refused before authentication: too many failed authentications from the address.")


def count_auth_failure(request, error: ApiError) -> ApiError:
    """Count a 401 against the caller's address: the error itself, or the 429 once the address is over."""
    limit = auth_failure_limit()
    if not limit.enabled:
        return error
    address = throttle.address_of(request)
    until = blocked_addresses.blocked_until(address)
    if until is not None:  # known to be blocked already: counting it again would change nothing
        return _too_many(until, f"Blocked address; {error.message}")
    try:
        tally = throttle.hit(limit, address)
    except DatabaseError:  # the caller still gets its 401; a failing count must not turn it into a 500
        log.exception("could not count a failed authentication from %s", address)
        return error
    if not tally.reached:
        return error
    blocked_addresses.remember(address, tally.window_end)
    if tally.count == limit.max_count:
        return error  # the last failure the window allows keeps its own answer; the next one is refused
    return _too_many(tally.window_end, f"{tally.count} failed authentications in the window; {error.message}")
