"""Bearer authentication with API tokens (stored hashed), for DRF views and plain Django views alike."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header

from mcpd.errors import AuthenticationFailed
from mcpd.models import ApiToken, digest


def authenticate_bearer(header: bytes | str) -> tuple[object, ApiToken] | None:
    """(user, token) for an `Authorization: Bearer …` header; None when there is no bearer header.

    Raises AuthenticationFailed for an unknown, revoked or expired token or an inactive user.
    """
    if isinstance(header, str):
        header = header.encode("latin-1")
    parts = header.split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer TOKEN'.")
    try:
        plaintext = parts[1].decode()
    except UnicodeDecodeError:
        raise AuthenticationFailed("Invalid API token.") from None
    try:
        token = ApiToken.objects.select_related("user").get(sha256=digest(plaintext))
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
        return authenticate_bearer(get_authorization_header(request))

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="mcpd"'
