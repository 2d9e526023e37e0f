"""OpenTelemetry: one span per inference call, after the GenAI semantic conventions, exported over OTLP
(HTTP/protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; nothing
at all otherwise (the SDK is not even imported).

A span is made when its call ends, from its audit fields, with the call's own start and end times:
the model, the provider, the tokens, the status, who called. Never a prompt, an answer, an error text
or a credential. The exporter's other settings are OpenTelemetry's own environment variables
(OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES, …).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from audit.models import Api

# The GenAI operation of each inbound API (gen_ai.operation.name).
OPERATIONS = {Api.CHAT_COMPLETIONS: "chat", Api.MESSAGES: "chat", Api.RESPONSES: "chat",
              Api.COUNT_TOKENS: "count_tokens"}

_lock = threading.Lock()
_tracer: Any = None
_pid: int | None = None  # the process the tracer was made in: a forked worker makes its own
_untraced_pid: int | None = None  # a process found without an endpoint: its calls ask no more


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def use(provider: Any) -> None:
    """Spans go to this TracerProvider from now on (tests: an in-memory exporter); None: back to the
    environment's choice."""
    global _tracer, _pid, _untraced_pid
    with _lock:
        _tracer = provider.get_tracer("mcpd") if provider is not None else None
        _pid = os.getpid() if provider is not None else None
        _untraced_pid = None


def _the_tracer() -> Any:
    global _tracer, _pid, _untraced_pid
    pid = os.getpid()
    if _tracer is not None and _pid == pid:
        return _tracer
    if _untraced_pid == pid:
        return None
    if not enabled():  # the environment is read once per process
        _untraced_pid = pid
        return None
    with _lock:
        if _tracer is None or _pid != os.getpid():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
                "OTEL_SERVICE_NAME", "mcpd")}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _tracer, _pid = provider.get_tracer("mcpd"), os.getpid()
    return _tracer


def record_call(fields: dict[str, Any], duration: float, ttft: float | None) -> None:
    """The span of one finished call (see the module docstring)."""
    tracer = _the_tracer()
    if tracer is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    end = time.time_ns()
    operation = OPERATIONS.get(fields.get("api"), "chat")
    model = fields.get("model") or fields.get("llm_name") or ""
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": fields.get("provider") or "",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": fields.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": fields.get("completion_tokens"),
        "gen_ai.usage.cache_read.input_tokens": fields.get("cache_read_tokens"),
        "gen_ai.usage.cache_creation.input_tokens": fields.get("cache_write_tokens"),
        "http.response.status_code": fields.get("status"),
        "mcpd.llm": fields.get("llm_name") or "",
        "mcpd.api": fields.get("api") or "",
        "mcpd.request_id": fields.get("request_id") or "",
        "mcpd.streaming": bool(fields.get("streaming")),
        "mcpd.outcome": str(fields.get("outcome") or ""),
        "mcpd.user": getattr(fields.get("user"), "username", "") or "",
        "mcpd.cost": None if fields.get("cost") is None else float(fields["cost"]),
        "mcpd.ttft_ms": None if ttft is None else round(ttft * 1000, 3),
    }
    span = tracer.start_span(f"{operation} {model}".strip(), kind=SpanKind.CLIENT, start_time=end - int(duration * 1e9),
                             attributes={key: value for key, value in attributes.items() if value is not None})
    if fields.get("outcome") not in (None, "ok"):
        span.set_attribute("error.type", str(fields.get("status") or "error"))
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end)
