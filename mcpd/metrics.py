"""Prometheus metrics for inference calls, served at /metrics.

Under gunicorn every worker is a process: with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets
it) each worker writes its samples there and /metrics adds them up across the host's workers.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

CALLS = Counter("mcpd_inference_calls_total", "Inference calls by Llm, status and outcome.",
                ["llm", "provider", "status", "outcome"])
DURATION = Histogram("mcpd_inference_duration_seconds", "Whole-call duration, streams included.",
                     ["llm", "provider", "streaming"], buckets=LATENCY_BUCKETS)
TTFT = Histogram("mcpd_inference_ttft_seconds", "Time to the first streamed chunk.",
                 ["llm", "provider"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("mcpd_inference_tokens_total", "Tokens reported by providers.", ["llm", "provider", "kind"])


def observe_call(fields: dict, duration: float, ttft: float | None) -> None:
    """Count one finished inference call (from its audit fields)."""
    llm, provider = fields.get("llm_name") or "-", fields.get("provider") or "-"
    CALLS.labels(llm, provider, str(fields.get("status")), fields.get("outcome")).inc()
    DURATION.labels(llm, provider, str(bool(fields.get("streaming"))).lower()).observe(duration)
    if ttft is not None:
        TTFT.labels(llm, provider).observe(ttft)
    for kind in ("prompt_tokens", "completion_tokens"):
        if fields.get(kind):
            TOKENS.labels(llm, provider, kind.removesuffix("_tokens")).inc(fields[kind])


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format, summed over this host's worker processes."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
