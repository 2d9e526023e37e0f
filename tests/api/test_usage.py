"""Usage rollups kept in the audit rows' own transaction, and every usage figure read from them: the
usage API, `manage.py usage`, pruning."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q, Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import rollups
from audit import writer as writer_module
from audit.models import INFERENCE, AuditEvent, UsageDay
from audit.writer import AuditWriter, insert_rows
from llms.permissions import grant_run
from tests.api.calls import infer
from tests.fakes.upstream import json_reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FIGURES = ["calls", "errors", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens",
           "cost", "unpriced_calls"]


def rollup_totals() -> dict:
    return UsageDay.objects.aggregate(**{f: Sum(f) for f in FIGURES})


def audit_totals() -> dict:
    """The same figures computed from the audit rows (what the rollups must always equal)."""
    calls = AuditEvent.objects.filter(kind=INFERENCE)
    totals = calls.aggregate(calls=Count("id"), errors=Count("id", filter=Q(outcome="error")),
                             prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
                             cache_read_tokens=Sum("cache_read_tokens"), cache_write_tokens=Sum("cache_write_tokens"),
                             unpriced_calls=Count("id", filter=Q(cost__isnull=True)))
    return {**totals, "cost": calls.aggregate(total=Sum("cost"))["total"]}


def same(rollup: dict, audit: dict) -> bool:
    return all((rollup[f] or 0) == (audit[f] or 0) for f in FIGURES)


@pytest.fixture
def priced(upstream_llm):
    upstream_llm.price_input, upstream_llm.price_output = Decimal("3"), Decimal("15")
    upstream_llm.save()
    return upstream_llm


@pytest.fixture
def traffic(alice, bob, client_for, priced, make_llm, fake_upstream):
    """alice: 3 calls on gpt (one an upstream error) and 1 on cheap; bob: 2 on gpt. bob is in 'research'."""
    cheap = make_llm("cheap", base_url=fake_upstream.url + "/v1")  # no prices: unpriced calls
    grant_run(alice, cheap)
    grant_run(bob, priced)
    Group.objects.create(name="research").user_set.add(bob)
    a, b = client_for(alice), client_for(bob)
    for _ in range(2):
        assert infer(a).status_code == 200
    fake_upstream.reply(json_reply({"error": {"message": "boom"}}, status=500))
    assert infer(a).status_code == 502
    assert infer(a, name="cheap").status_code == 200
    for _ in range(2):
        assert infer(b).status_code == 200
    return a, b


def test_the_rollups_equal_the_audit_rows(traffic):
    assert same(rollup_totals(), audit_totals())
    assert rollup_totals()["calls"] == 6 and rollup_totals()["errors"] == 1 and rollup_totals()["unpriced_calls"] == 2


def test_a_caller_sees_their_own_usage_per_llm(traffic):
    alice_client, _ = traffic
    body = alice_client.get("/api/v1/usage/?group_by=llm").json()
    assert body["scope"] == "own" and body["currency"] == "USD"
    by_llm = {entry["llm"]: entry for entry in body["data"]}
    assert set(by_llm) == {"gpt", "cheap"}
    assert (by_llm["gpt"]["calls"], by_llm["gpt"]["errors"], by_llm["gpt"]["prompt_tokens"]) == (3, 1, 18)
    assert by_llm["gpt"]["cost"] == "0.000234"  # 2 × (9 × 3 + 6 × 15) / 1e6; the failed call has no tokens
    assert by_llm["cheap"]["unpriced_calls"] == 1 and by_llm["cheap"]["cost"] == "0"
    assert body["total"]["calls"] == 4


def test_view_auditevent_sees_everyones_usage_by_user_group_and_token(traffic, carol, client_for):
    carol.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client = client_for(carol)
    users = {e["user"]: e["calls"] for e in client.get("/api/v1/usage/?group_by=user").json()["data"]}
    assert users == {"alice": 4, "bob": 2}
    groups = {e["group"]: e["calls"] for e in client.get("/api/v1/usage/?group_by=group").json()["data"]}
    assert groups == {"research": 2, None: 4}
    tokens = client.get("/api/v1/usage/?group_by=token").json()
    assert sorted((e["user"], e["calls"]) for e in tokens["data"]) == [("alice", 4), ("bob", 2)]
    assert all(e["token_id"] for e in tokens["data"]) and tokens["scope"] == "everyone"
    assert tokens["total"]["calls"] == 6


def test_the_span_is_of_days_both_included(traffic):
    client, _ = traffic
    today = timezone.now().date()
    assert client.get(f"/api/v1/usage/?since={today}&until={today}").json()["total"]["calls"] == 4
    yesterday = today - timedelta(days=1)
    assert client.get(f"/api/v1/usage/?until={yesterday}").json()["total"]["calls"] == 0


def test_a_span_ending_on_the_first_day_there_is_starts_there(traffic):
    client, _ = traffic  # the default start, 29 days before, does not exist: once a 500 (OverflowError)
    usage = client.get("/api/v1/usage/?until=0001-01-01").json()
    assert (usage["since"], usage["until"], usage["total"]["calls"]) == ("0001-01-01", "0001-01-01", 0)
    assert client.get("/api/v1/usage/?until=0001-01-29").json()["since"] == "0001-01-01"


@pytest.mark.parametrize(("query", "param"), [("group_by=model", "group_by"), ("since=yesterday", "since"),
                                              ("since=2026-12-02&until=2026-12-01", "since"),
                                              ("until=2026-13-01", "until")])
def test_a_bad_query_is_a_400_naming_the_parameter(alice, client_for, query, param):
    response = client_for(alice).get(f"/api/v1/usage/?{query}")
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_usage_is_read_from_the_rollups_never_from_audit_rows(traffic):
    client, _ = traffic
    with CaptureQueriesContext(connection) as context:
        for group_by in ("llm", "user", "group", "token"):
            assert client.get(f"/api/v1/usage/?group_by={group_by}").status_code == 200
    assert not [q["sql"] for q in context.captured_queries if "audit_auditevent" in q["sql"]]


def test_usage_needs_authentication(client):
    assert client.get("/api/v1/usage/").status_code == 401


def test_pruning_the_audit_log_keeps_the_rollups(traffic):
    before = rollup_totals()
    AuditEvent.objects.filter(kind=INFERENCE).update(created_at=timezone.now() - timedelta(days=100))
    call_command("audit", "prune", "--older-than-days", "90")
    assert not AuditEvent.objects.filter(kind=INFERENCE).exists()
    assert rollup_totals() == before


def test_manage_py_usage_prints_a_table_from_the_rollups(traffic, capsys):
    call_command("usage", "--by", "user")
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:3] == ["user", "calls", "errors"]
    alice_line = next(line for line in out if line.startswith("alice"))
    assert alice_line.split()[1:3] == ["4", "1"]
    assert out[-1].split()[:2] == ["total", "6"]


def test_a_batch_whose_rollup_fails_is_retried_and_counted_once(monkeypatch, caplog):
    """The consumer dies between the rows' INSERT and the rollup: the transaction takes both back, the
    retry writes both; nothing is lost or counted twice."""
    monkeypatch.setattr(writer_module, "RETRY_PAUSES", (0.01,))
    real_add, failures = rollups.add, [RuntimeError("killed mid-batch")]

    def add(rows, day):
        assert AuditEvent.objects.filter(kind=INFERENCE).count() == len(rows)  # the rows are in, uncommitted
        if failures:
            raise failures.pop()
        real_add(rows, day)

    monkeypatch.setattr(rollups, "add", add)
    batch = [{"kind": INFERENCE, "llm_name": "gpt", "request_id": f"r{n}", "status": 200, "outcome": "ok",
              "prompt_tokens": 10, "completion_tokens": 5, "cost": Decimal("0.001")} for n in range(40)]
    writer = AuditWriter(insert_rows)
    writer.start()
    with caplog.at_level(logging.ERROR, logger="audit.writer"):
        for row in batch:
            writer.submit(row)
        wait_for(lambda: UsageDay.objects.exists())
    writer.stop()
    assert AuditEvent.objects.filter(kind=INFERENCE).count() == 40
    assert rollup_totals()["calls"] == 40 and rollup_totals()["cost"] == Decimal("0.04")
    assert same(rollup_totals(), audit_totals())


def test_rows_of_many_keys_in_one_batch_add_up_per_key():
    users = [User.objects.create_user(f"u{n}") for n in range(3)]
    batch = [{"kind": INFERENCE, "llm_name": f"llm{n % 2}", "user": users[n % 3], "token_sha": "t" * 64,
              "status": 200, "outcome": "ok", "prompt_tokens": n, "completion_tokens": 1} for n in range(30)]
    insert_rows(batch[:15])
    insert_rows(batch[15:])
    assert UsageDay.objects.count() == 6
    assert same(rollup_totals(), audit_totals())
