"""Request IDs and change-audit attribution for every request."""

from __future__ import annotations

import re
import uuid

from audit.context import acting_as

_VALID_REQUEST_ID = re.compile(r"^[\w.:@/+=-]{1,128}$")


def request_id_for(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    if header and _VALID_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets request.request_id and echoes it as X-Request-ID on every response; attributes changes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request.headers.get("X-Request-ID"))

        def actor():
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                return user, user.get_username()
            return None, "anonymous"

        with acting_as(actor):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


def client_ip(request) -> str | None:
    """The caller's address: the first X-Forwarded-For hop behind a trusted proxy, else REMOTE_ADDR."""
    from django.conf import settings

    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None
