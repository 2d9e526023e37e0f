"""The server as operators run it with MCPD_LOG_FORMAT=json and OTEL_EXPORTER_OTLP_ENDPOINT: every line
it writes is one JSON object (its calls', gunicorn's access and error lines alike), and each call's
span reaches an OTLP/HTTP collector on loopback, decoded here with OpenTelemetry's own protobufs."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import running_server
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.xdist_group("e2e")

SET_UP = """
from django.contrib.auth.models import User
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
llm = Llm.objects.create(name="traced", provider="openai", model="gpt-traced", base_url={base_url!r})
user = User.objects.create_user("olivia")
grant_run(user, llm)
print(ApiToken.objects.issue(user)[1])
"""


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps each ExportTraceServiceRequest it is sent."""

    def __init__(self) -> None:
        self.exports: list[tuple[str, ExportTraceServiceRequest]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                export = ExportTraceServiceRequest()
                export.ParseFromString(body)
                collector.exports.append((self.path, export))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def spans(self) -> list:
        return [span for _, export in self.exports for resource in export.resource_spans
                for scope in resource.scope_spans for span in scope.spans]


def test_json_logs_and_otlp_spans_from_the_real_server(tmp_path_factory):
    collector = Collector()
    env = {"MCPD_LOG_FORMAT": "json", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "mcpd-e2e"}
    try:
        with FakeUpstream() as fake, running_server(tmp_path_factory, env=env) as server:
            token = server.manage("shell", "-c", SET_UP.format(base_url=f"{fake.url}/v1")).strip().splitlines()[-1]
            answer = requests.post(f"{server.url}/v1/chat/completions", timeout=10,
                                   headers={"Authorization": f"Bearer {token}", "x-request-id": 'r"1 forged"'},
                                   json={"model": "traced", "messages": [{"role": "user", "content": "secret plan"}]})
            assert answer.status_code == 200
            deadline = time.monotonic() + 10
            while not collector.spans() and time.monotonic() < deadline:
                time.sleep(0.1)
            log = server.log()
    finally:
        collector.shutdown()
    [span] = collector.spans()
    attributes = {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}
    assert span.name == "chat gpt-traced" and attributes["mcpd.llm"] == "traced"
    assert attributes["gen_ai.usage.input_tokens"] == 9 and attributes["mcpd.user"] == "olivia"
    assert collector.exports[0][0] == "/v1/traces"
    resource = {a.key: a.value.string_value for a in collector.exports[0][1].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "mcpd-e2e"
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is one JSON object
    [call] = [line["call"] for line in lines if "call" in line]
    assert call["llm"] == "traced" and call["status"] == 200 and call["user"] == "olivia"
    assert any(line.get("access", {}).get("path") == "/v1/chat/completions" for line in lines)
    assert "secret plan" not in log and token not in log
