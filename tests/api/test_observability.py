"""What operators see of each call besides its audit row: one log line (plain or JSON), one OpenTelemetry
span after the GenAI conventions, and the gauges and counters of /metrics. None of it holds a prompt,
an answer or a key."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import requests
from django.test import Client

from limits.models import Limit
from mcpd import tracing
from mcpd.logs import JsonFormatter
from tests.api.calls import CHAT, infer
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import json_reply, openai_stream_frames, sse_reply
from tests.waiting import wait_for

PROMPT = CHAT["messages"][0]["content"]


def metric(name: str, **labels) -> float:
    text = Client().get("/metrics").content.decode()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if (line.startswith(name + "{") or line.startswith(name + " ")) and all(w in line for w in wanted))


def call_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "mcpd.calls"]


def test_each_call_logs_one_line_with_its_figures_and_nothing_it_said(alice, client_for, upstream_llm, caplog,
                                                                      fake_upstream):
    caplog.set_level(logging.INFO, logger="mcpd.calls")
    assert infer(client_for(alice)).status_code == 200
    fake_upstream.reply(json_reply({"error": {"message": f"bad key {FAKE_KEY} for '{PROMPT}'"}}, status=401))
    assert infer(client_for(alice)).status_code == 502
    ok, failed = call_lines(caplog)
    assert ok.call["llm"] == "gpt" and ok.call["user"] == "alice" and ok.call["status"] == 200
    assert ok.call["api"] == "chat_completions" and ok.call["prompt_tokens"] == 9 and ok.call["completion_tokens"] == 6
    assert {"request_id", "duration_ms", "outcome", "provider", "model", "token"} <= set(ok.call)
    assert "llm=gpt" in ok.getMessage() and "status=200" in ok.getMessage()
    assert (failed.call["status"], failed.call["outcome"]) == (502, "error")
    for record in (ok, failed):
        for text in (record.getMessage(), JsonFormatter().format(record)):
            assert PROMPT not in text and FAKE_KEY not in text and "Hello from" not in text


def test_the_json_format_is_one_object_per_line():
    formatter = JsonFormatter()
    record = logging.LogRecord("mcpd.calls", logging.INFO, __file__, 1, "inference call %s", ("x",), None)
    record.call = {"llm": "gpt", "status": 200}
    line = json.loads(formatter.format(record))
    assert line["call"] == {"llm": "gpt", "status": 200} and line["message"] == "inference call"
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")
    other = logging.LogRecord("mcpd", logging.WARNING, __file__, 1, 'a "quoted"\nline', (), None)
    assert "\n" not in formatter.format(other) and json.loads(formatter.format(other))["message"] == 'a "quoted"\nline'


@pytest.fixture
def spans():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)


def test_each_call_is_one_span_after_the_genai_conventions(alice, client_for, upstream_llm, spans):
    assert infer(client_for(alice)).status_code == 200
    [span] = spans.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind.name == "CLIENT" and span.status.status_code.name == "UNSET"
    attributes = dict(span.attributes)
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini" and attributes["mcpd.llm"] == "gpt"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (9, 6)
    assert attributes["http.response.status_code"] == 200 and attributes["mcpd.user"] == "alice"
    assert span.end_time - span.start_time > 0
    assert PROMPT not in json.dumps(attributes) and FAKE_KEY not in json.dumps(attributes)


def test_a_failed_call_is_an_error_span(alice, client_for, upstream_llm, fake_upstream, spans):
    fake_upstream.reply(json_reply({"error": {"message": "down"}}, status=503))
    assert infer(client_for(alice)).status_code == 502
    [span] = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == "502"


def test_no_endpoint_no_tracer(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.enabled() and tracing._the_tracer() is None


def test_open_streams_are_gauged_and_limit_refusals_counted(live_server, alice, token_for, upstream_llm,
                                                            fake_upstream):
    fake_upstream.reply(sse_reply(openai_stream_frames([f"w{i} " for i in range(6)]), interval=0.1))
    headers = {"Authorization": f"Bearer {token_for(alice)}"}
    url = f"{live_server.url}/v1/chat/completions"
    before = metric("mcpd_streams_open")
    stream = requests.post(url, json={"model": "gpt", **CHAT, "stream": True}, headers=headers, stream=True, timeout=10)
    done = threading.Event()
    threading.Thread(target=lambda: (stream.content, done.set()), daemon=True).start()
    assert metric("mcpd_streams_open") == before + 1
    assert done.wait(10)
    assert wait_for(lambda: metric("mcpd_streams_open") == before)
    Limit.objects.create(user=alice, requests_per_minute=1)
    refused = metric("mcpd_limit_refusals_total", code="rate_limited")
    assert requests.post(url, json={"model": "gpt", **CHAT}, headers=headers, timeout=10).status_code == 200
    assert requests.post(url, json={"model": "gpt", **CHAT}, headers=headers, timeout=10).status_code == 429
    assert metric("mcpd_limit_refusals_total", code="rate_limited") == refused + 1
