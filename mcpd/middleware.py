"""Request IDs and change-audit attribution for every request; the Content-Security-Policy of pages."""

from __future__ import annotations

import ipaddress
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
    """The caller's address, or None when it is not one.

    Behind MCPD_TRUSTED_PROXIES proxies (MCPD_BEHIND_PROXY=true), each proxy appends the address it
    received the request from to X-Forwarded-For (nginx: $proxy_add_x_forwarded_for), so the hops a
    client wrote come first and only the right-most ones are trustworthy: the caller is the hop the
    outermost trusted proxy added. Without the header the request did not come through a proxy.
    """
    from django.conf import settings

    hops = settings.TRUSTED_PROXY_HOPS
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "") if hops else ""
    if forwarded:
        chain = forwarded.split(",")
        return valid_ip(chain[max(0, len(chain) - hops)])
    return valid_ip(request.META.get("REMOTE_ADDR", ""))


def valid_ip(text: str) -> str | None:
    """The address in its canonical form, or None for anything that is not an IPv4/IPv6 address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv6 zone (fe80::1%eth0) names an interface of the proxy's host, and inet columns refuse it.
    return str(address).partition("%")[0]


# What the admin, its login, the API docs and Django's error pages may load: this server's own files.
# Each source beyond 'self' is there for a page that needs it (tests/e2e/test_admin_browser.py checks):
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",  # no inline script: the docs' init script is a file too (SpectacularSwaggerSplitView)
    # Inline <style> blocks: drf-spectacular's Swagger UI page, guardian's permissions page and Django's
    # error pages (CSRF failure, DEBUG). Hashes of them would break with each upgrade of those packages,
    # and with every fetch directive at 'self' an injected style can send nothing to another host.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",  # Swagger UI's icons are data: URIs in its stylesheet
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",  # X-Frame-Options DENY, for browsers that go by the policy
    "form-action 'self'",
])


def wants_policy(response, debug: bool) -> bool:
    """An HTML page without a policy of its own. With DEBUG on, Django's traceback page (a 500) keeps
    its inline scripts working."""
    if not response.get("Content-Type", "").startswith("text/html"):
        return False  # JSON and event streams, the hot path: this one look-up is all they pay
    return "Content-Security-Policy" not in response and not (debug and response.status_code == 500)


class ContentSecurityPolicyMiddleware:
    """Sets mcpd's Content-Security-Policy on the HTML pages it serves."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.debug = settings.DEBUG

    def __call__(self, request):
        response = self.get_response(request)
        if wants_policy(response, self.debug):
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response
