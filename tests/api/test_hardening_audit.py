"""The audited address and metrics labels that a client cannot choose, and rows hostile values cannot prevent.

Runs on SQLite and on PostgreSQL (tests/run.sh): PostgreSQL's `inet` and `varchar(n)` columns are what
refused the hostile rows.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.test import Client

from audit import rollups
from audit.models import UsageDay
from mcpd import metrics
from mcpd.middleware import client_ip
from tests.api.calls import CHAT, error_of, infer, rows, sse_body

pytestmark = pytest.mark.django_db


# --- 1. the audited address, and rows that hostile values cannot prevent


class FakeRequest:
    def __init__(self, forwarded: str | None = None, remote: str = "10.0.0.9"):
        self.META = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


@pytest.mark.parametrize("hops, forwarded, expected", [
    (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the client wrote 6.6.6.6; nginx appended the real peer
    (1, "203.0.113.7", "203.0.113.7"),
    (2, "6.6.6.6, 203.0.113.7, 10.1.1.1", "203.0.113.7"),  # CDN then nginx
    (2, "203.0.113.7", "203.0.113.7"),  # fewer hops than proxies: the furthest one vouched for
    (1, "203.0.113.7, x", None),  # what the proxy added is not an address: NULL, never the client's text
    (1, "", "10.0.0.9"),
    (1, None, "10.0.0.9"),  # no header: the request did not come through the proxy
    (1, "6.6.6.6, 2001:DB8::1", "2001:db8::1"),
    (1, "fe80::1%eth0", "fe80::1"),
    (0, "6.6.6.6", "10.0.0.9"),  # not behind a proxy: the header is ignored
])
def test_the_client_ip_is_the_hop_the_trusted_proxy_added(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_HOPS = hops
    assert client_ip(FakeRequest(forwarded)) == expected


HOSTILE_FORWARDED = ["x", "1.2.3.4, x", "999.1.1.1", "1.2.3.4\x00", "a" * 5000, "🙂, ☃", ", ,"]


@pytest.mark.parametrize("forwarded", HOSTILE_FORWARDED)
@pytest.mark.parametrize("stream", [False, True])
def test_a_hostile_forwarded_header_still_gives_one_row(behind_proxy, alice, client_for, upstream_llm,
                                                        fake_upstream, forwarded, stream):
    response = infer(client_for(alice), {**CHAT, "stream": stream}, HTTP_X_FORWARDED_FOR=forwarded)
    assert response.status_code == 200
    if stream:
        assert sse_body(response).endswith(b"data: [DONE]\n\n")
    [row] = rows()
    assert (row.status, row.outcome, row.client_ip) == (200, "ok", None)


@pytest.mark.parametrize("name", ["a" * 300, "bad\x00name", "\U0001f600" * 120, "\u202eevil", "ñ" * 101])
def test_an_odd_llm_name_still_gives_one_row(alice, client_for, upstream_llm, name):
    response = client_for(alice).post("/v1/chat/completions", data=json.dumps({**CHAT, "model": name}),
                                      content_type="application/json")
    assert response.status_code == 403
    [row] = rows()
    assert row.status == 403 and len(row.llm_name) <= 100 and "\x00" not in row.llm_name


def test_an_odd_name_in_the_path_still_gives_one_row(alice, client_for, upstream_llm):
    assert client_for(alice).post("/api/v1/llms/" + "%00%F0%9F%98%80" * 60 + "/infer", data="{}",
                                  content_type="application/json").status_code == 403
    [row] = rows()
    assert row.status == 403 and "\x00" not in row.llm_name


def test_a_row_that_cannot_be_written_is_logged_and_counted(alice, client_for, upstream_llm, fake_upstream,
                                                            monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("database on fire")

    client = client_for(alice)
    monkeypatch.setattr(rollups, "add", refuse)  # the row's transaction fails: neither is written
    before = metrics.AUDIT_WRITE_FAILURES._value.get()
    with caplog.at_level(logging.ERROR, logger="audit.recorder"):
        response = infer(client, HTTP_X_REQUEST_ID="rid-lost-1")
    assert response.status_code == 200  # the answer is already the client's
    assert metrics.AUDIT_WRITE_FAILURES._value.get() == before + 1
    assert "AUDIT ROW LOST" in caplog.text and "rid-lost-1" in caplog.text
    assert rows() == [] and not UsageDay.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_hostile_header_never_costs_the_row_of_a_stream_through_a_live_server(
        behind_proxy, live_server, alice, token_for, upstream_llm, fake_upstream):
    response = requests.post(f"{live_server.url}/v1/chat/completions", timeout=10, stream=True,
                             headers={"Authorization": f"Bearer {token_for(alice)}", "X-Forwarded-For": "1.2.3.4, x"},
                             json={**CHAT, "model": "gpt", "stream": True})
    assert response.content.endswith(b"data: [DONE]\n\n")
    from tests.waiting import wait_for

    [row] = wait_for(rows)
    assert (row.outcome, row.client_ip) == ("ok", None)


# --- 3. /metrics: labels only of found Llms, and only for those who may read it


def metrics_text(client=None, **extra) -> str:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_a_refused_call_adds_no_label_of_the_clients_choosing(client, upstream_llm):
    name = "zz-" + "q" * 3000
    client.post("/v1/chat/completions", data=json.dumps({**CHAT, "model": name}), content_type="application/json")
    client.post("/api/v1/llms/evil%00name/infer", data="{}", content_type="application/json")
    text = metrics_text()
    assert "zz-qqq" not in text and "evil" not in text and "\x00" not in text
    assert 'mcpd_inference_calls_total{llm="-",outcome="error",provider="-",status="401"}' in text


def test_a_served_call_is_labelled_with_its_llm(alice, client_for, upstream_llm, fake_upstream):
    infer(client_for(alice))
    assert 'llm="gpt",outcome="ok",provider="openai",status="200"' in metrics_text()


@pytest.fixture
def scraper(db) -> User:
    user = User.objects.create_user("prometheus")
    user.user_permissions.add(Permission.objects.get(codename="view_metrics"))
    return user


def test_metrics_from_elsewhere_need_a_token_with_view_metrics(scraper, carol, token_for, settings):
    far = {"REMOTE_ADDR": "198.51.100.7"}
    anonymous = Client().get("/metrics", **far)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert error_of(anonymous)["type"] == "authentication_error"
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer mcpd_nope", **far).status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}", **far).status_code == 403
    assert "# TYPE mcpd_inference_calls_total counter" in metrics_text(
        HTTP_AUTHORIZATION=f"Bearer {token_for(scraper)}", **far)
    settings.METRICS_ALLOW = ["198.51.100.0/24"]
    assert Client().get("/metrics", **far).status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_metrics_behind_a_proxy_judge_the_client_not_the_proxy(behind_proxy):
    through_proxy = Client().get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert through_proxy.status_code == 401
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200  # a local scraper


def test_declared_families_are_listed_before_any_call(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # a fresh host: no samples at all
    text = metrics_text()
    for family, kind in [("mcpd_inference_calls_total", "counter"), ("mcpd_inference_duration_seconds", "histogram"),
                         ("mcpd_inference_ttft_seconds", "histogram"), ("mcpd_inference_tokens_total", "counter"),
                         ("mcpd_audit_write_failures_total", "counter")]:
        assert f"# TYPE {family} {kind}" in text and f"# HELP {family} " in text
