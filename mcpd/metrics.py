"""Prometheus metrics for inference calls, served at /metrics to scrapers that may read them.

Under gunicorn every worker is a process: with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets
it) each worker writes its samples there and /metrics adds them up across the host's workers.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from mcpd.errors import ApiError, AuthenticationFailed, PermissionDenied
from mcpd.http import error_response

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
VIEW_PERM = "audit.view_metrics"
UNRESOLVED = "-"  # the label of calls refused before an Llm was found: never the client's text

CALLS = Counter("mcpd_inference_calls_total", "Inference calls by Llm, status and outcome.",
                ["llm", "provider", "status", "outcome"])
DURATION = Histogram("mcpd_inference_duration_seconds", "Whole-call duration, streams included.",
                     ["llm", "provider", "streaming"], buckets=LATENCY_BUCKETS)
TTFT = Histogram("mcpd_inference_ttft_seconds", "Time to the first streamed chunk.",
                 ["llm", "provider"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("mcpd_inference_tokens_total", "Tokens reported by providers.", ["llm", "provider", "kind"])
AUDIT_WRITE_FAILURES = Counter("mcpd_audit_write_failures_total",
                               "Inference audit rows that could not be written (each one is logged).")
RETRIES = Counter("mcpd_upstream_retries_total",
                  "Attempts that failed before the first byte and moved on to another deployment.",
                  ["llm", "deployment", "status"])
COOLDOWNS = Counter("mcpd_deployment_cooldowns_total", "Deployments marked cooling down after a failure.",
                    ["llm", "deployment"])
FALLBACKS = Counter("mcpd_fallbacks_total", "Calls passed to a fallback Llm after every deployment failed.",
                    ["llm", "fallback"])
LIMIT_REFUSALS = Counter("mcpd_limit_refusals_total", "Calls refused by mcpd's own limits, by code.", ["code"])
# livesum: the open streams of the host's live workers (a dead worker's are not counted).
STREAMS_OPEN = Gauge("mcpd_streams_open", "Streams being relayed to clients now.", multiprocess_mode="livesum")
DECLARED = (CALLS, DURATION, TTFT, TOKENS, AUDIT_WRITE_FAILURES, RETRIES, COOLDOWNS, FALLBACKS, LIMIT_REFUSALS,
            STREAMS_OPEN)


def observe_call(fields: dict, duration: float, ttft: float | None, *, resolved: bool) -> None:
    """Count one finished inference call (from its audit fields). Labels name only an Llm that was
    found: a refused call's name is the client's text, and every label is kept until restart."""
    llm = fields["llm_name"] if resolved else UNRESOLVED
    provider = fields.get("provider") if resolved else UNRESOLVED
    CALLS.labels(llm, provider, str(fields.get("status")), fields.get("outcome")).inc()
    DURATION.labels(llm, provider, str(bool(fields.get("streaming"))).lower()).observe(duration)
    if ttft is not None:
        TTFT.labels(llm, provider).observe(ttft)
    for kind in ("prompt_tokens", "completion_tokens"):
        if fields.get(kind):
            TOKENS.labels(llm, provider, kind.removesuffix("_tokens")).inc(fields[kind])


class _WithDeclaredFamilies:
    """The host's samples, plus an empty family (# HELP and # TYPE) for every metric not yet
    observed: a dashboard then shows 0 rather than "no data" before the first call."""

    def __init__(self, source) -> None:
        self._source = source

    def collect(self):
        seen = set()
        for family in self._source.collect():
            seen.add(family.name)
            yield family
        for metric in DECLARED:
            yield from (family for family in metric.describe() if family.name not in seen)


LOOPBACK = ("127.0.0.0/8", "::1/128")


@cache
def _allowed_networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in LOOPBACK + spec)


def _from_allowed_network(request: HttpRequest) -> bool:
    from mcpd.middleware import client_ip

    address = client_ip(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in _allowed_networks(tuple(settings.METRICS_ALLOW)))


def _check_scraper(request: HttpRequest) -> None:
    """Loopback and MCPD_METRICS_ALLOW pass; anyone else needs a bearer token with view_metrics."""
    if _from_allowed_network(request):
        return
    from mcpd.auth import authenticate_bearer

    found = authenticate_bearer(request.headers.get("Authorization", ""))
    if found is None:
        raise AuthenticationFailed("/metrics needs a bearer token of a user with the view_metrics permission.")
    user, _ = found
    if not user.has_perm(VIEW_PERM):
        raise PermissionDenied("This token's user lacks the view_metrics permission.")


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format, summed over this host's worker processes."""
    try:
        _check_scraper(request)
    except ApiError as error:
        response = error_response(error)
        if isinstance(error, AuthenticationFailed):
            response["WWW-Authenticate"] = 'Bearer realm="mcpd"'
        return response
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        registry.register(_WithDeclaredFamilies(multiprocess.MultiProcessCollector(None)))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
