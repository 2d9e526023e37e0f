"""Limits on every inference route, counted in the active store (the database; Redis in tests/run.sh's
pass with REDIS_URL): requests and tokens per minute, concurrent calls, budgets; Retry-After, the error
shapes, the audit row, x-ratelimit-* headers, and what happens when the counters cannot be reached."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from limits import admission
from limits.models import Limit
from limits.store import StoreUnavailable
from llms.permissions import grant_run
from mcpd.models import ApiToken
from tests.api.calls import CHAT, error_of, infer
from tests.fakes.upstream import json_reply, openai_stream_frames, sse_reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
START = 1_800_000_000.0  # the start of a minute: 2027-01-15T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.time = START + 10  # ten seconds into a minute

    def advance(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(admission, "now", lambda: clock.time)
    return clock


def chat(client, name="gpt", **body):
    return client.post("/v1/chat/completions", {"model": name, **CHAT, **body}, format="json")


def test_requests_per_minute_refuse_the_next_call_until_the_minute_ends(alice, client_for, upstream_llm, clock,
                                                                         audit_rows):
    limit = Limit.objects.create(user=alice, requests_per_minute=3)
    client = client_for(alice)
    answers = [chat(client) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0]["x-ratelimit-limit-requests"] == "3" and answers[0]["x-ratelimit-remaining-requests"] == "2"
    assert answers[2]["x-ratelimit-remaining-requests"] == "0" and answers[2]["x-ratelimit-reset-requests"] == "50s"
    refused = answers[3]
    assert refused["Retry-After"] == "50"
    error = error_of(refused)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
    assert "3 requests per minute" in error["message"] and "alice" in error["message"]
    row = wait_for(lambda: audit_rows()[3] if len(audit_rows()) == 4 else None)
    assert row.status == 429 and f"limit #{limit.pk}" in row.error
    clock.advance(50)
    assert chat(client).status_code == 200


@pytest.mark.parametrize("route", ["infer", "chat", "messages", "responses", "count_tokens"])
def test_every_inference_route_is_limited(alice, client_for, upstream_llm, make_llm, fake_upstream, clock, route):
    claude = make_llm("claude", provider="anthropic", model="claude-sonnet-4-5", base_url=fake_upstream.url + "/v1")
    grant_run(alice, claude)
    Limit.objects.create(user=alice, requests_per_minute=1)
    client = client_for(alice)
    calls = {
        "infer": lambda: infer(client),
        "chat": lambda: chat(client),
        "messages": lambda: client.post("/v1/messages", {"model": "claude", "max_tokens": 10, **CHAT}, format="json"),
        "responses": lambda: client.post("/v1/responses", {"model": "gpt", "input": "hi"}, format="json"),
        "count_tokens": lambda: client.post("/v1/messages/count_tokens", {"model": "claude", **CHAT}, format="json"),
    }
    assert calls[route]().status_code == 200
    refused = calls[route]()
    assert refused.status_code == 429 and refused["Retry-After"] == "50"
    if route in ("messages", "count_tokens"):  # Anthropic's shape; its type stays rate_limit_error
        assert refused.json() == {"type": "error", "error": {"type": "rate_limit_error",
                                                             "message": refused.json()["error"]["message"]}}
    else:
        assert error_of(refused)["code"] == "rate_limited"


def test_a_limit_on_one_llm_leaves_the_others_alone(alice, client_for, upstream_llm, make_llm, fake_upstream, clock):
    other = make_llm("other", base_url=fake_upstream.url + "/v1")
    grant_run(alice, other)
    Limit.objects.create(user=alice, llm=upstream_llm, requests_per_minute=1)
    client = client_for(alice)
    assert [chat(client).status_code, chat(client).status_code] == [200, 429]
    assert chat(client, "other").status_code == 200


def test_a_group_limit_counts_its_members_together(alice, carol, client_for, upstream_llm, clock):
    grant_run(carol, upstream_llm)
    team = Group.objects.create(name="team")
    team.user_set.add(alice, carol)
    Limit.objects.create(group=team, requests_per_minute=2)
    assert chat(client_for(alice)).status_code == 200
    assert chat(client_for(carol)).status_code == 200
    refused = chat(client_for(alice))
    assert refused.status_code == 429 and "group team" in error_of(refused)["message"]


def test_a_token_limit_counts_that_token_only(alice, client_for, token_for, upstream_llm, clock):
    first = client_for(alice)
    assert chat(first).status_code == 200
    token = ApiToken.objects.get(user=alice)
    Limit.objects.create(token=token, requests_per_minute=1)
    assert [chat(first).status_code, chat(first).status_code] == [200, 429]
    assert chat(client_for(alice)).status_code == 200  # another token of alice's


def test_an_everyone_limit_counts_every_caller_together(alice, carol, client_for, upstream_llm, clock):
    grant_run(carol, upstream_llm)
    Limit.objects.create(everyone=True, requests_per_minute=1)
    assert chat(client_for(alice)).status_code == 200
    refused = chat(client_for(carol))
    assert refused.status_code == 429 and "all callers together" in error_of(refused)["message"]


def test_tokens_per_minute_reserve_an_estimate_and_settle_to_the_real_usage(alice, client_for, upstream_llm, clock,
                                                                           counts):
    limit = Limit.objects.create(user=alice, tokens_per_minute=100)
    client = client_for(alice)
    first = chat(client, max_tokens=50)
    assert first.status_code == 200 and first["x-ratelimit-limit-tokens"] == "100"
    window = f"tpm:{limit.pk}:"
    assert wait_for(lambda: counts.value(window) == 15)  # 9 prompt + 6 completion
    assert chat(client, max_tokens=80).status_code == 200  # 15 used: under the cap, admitted
    assert wait_for(lambda: counts.value(window) == 30)
    counts.set(window, 100)
    refused = chat(client)
    assert refused.status_code == 429 and "100 tokens per minute" in error_of(refused)["message"]


def test_a_call_that_fails_before_the_provider_answers_gives_its_reservation_back(alice, client_for, upstream_llm,
                                                                                 fake_upstream, clock, counts):
    limit = Limit.objects.create(user=alice, tokens_per_minute=10_000)
    fake_upstream.reply(json_reply({"error": {"message": "boom"}}, status=500))
    assert chat(client_for(alice), max_tokens=500).status_code == 502
    assert wait_for(lambda: counts.value(f"tpm:{limit.pk}:") == 0)


def test_a_budget_stops_within_one_calls_cost_and_says_so_until_the_period_ends(alice, client_for, upstream_llm,
                                                                               clock, audit_rows):
    upstream_llm.price_input, upstream_llm.price_output = Decimal("1000"), Decimal("1000")
    upstream_llm.save()  # 15 tokens a call: 0.015 each
    Limit.objects.create(user=alice, budget=Decimal("0.05"), period="day")
    client = client_for(alice)
    statuses = []
    for n in range(1, 7):
        statuses.append(chat(client, max_tokens=10).status_code)
        wait_for(lambda n=n: len(audit_rows()) == n)  # each call settled before the next
    assert statuses == [200, 200, 200, 200, 429, 429]
    spent = sum(row.cost for row in audit_rows() if row.cost is not None)
    assert Decimal("0.05") <= spent <= Decimal("0.05") + Decimal("0.015")
    refused = chat(client)
    assert error_of(refused)["code"] == "budget_exceeded" and refused["Retry-After"] == str(16 * 3600 - 10)
    clock.advance(16 * 3600)  # midnight UTC: a new day's budget
    assert chat(client).status_code == 200


@pytest.mark.parametrize("period", ["day", "month"])
def test_budget_windows_end_at_midnight_and_month_end_utc(period):
    name, end = admission._period(period, START + 10)  # 2027-01-15T08:00:10Z
    assert (name, end) == (("2027-01-15", int(START) + 16 * 3600) if period == "day"
                           else ("2027-01", 1801440000))  # 2027-02-01T00:00:00Z


def test_concurrent_calls_hold_slots_until_their_streams_end(live_server, alice, token_for, upstream_llm,
                                                             fake_upstream, clock, counts):
    Limit.objects.create(user=alice, concurrent=1)
    fake_upstream.reply(sse_reply(openai_stream_frames([f"w{i} " for i in range(10)]), interval=0.1))
    headers = {"Authorization": f"Bearer {token_for(alice)}"}
    url = f"{live_server.url}/v1/chat/completions"
    stream = requests.post(url, json={"model": "gpt", **CHAT, "stream": True}, headers=headers, stream=True, timeout=10)
    assert stream.status_code == 200
    second = requests.post(url, json={"model": "gpt", **CHAT}, headers=headers, timeout=10)
    assert second.status_code == 429 and second.json()["error"]["code"] == "concurrency_limited"
    assert second.headers["Retry-After"] == "1"
    assert stream.content.endswith(b"data: [DONE]\n\n")  # the stream runs to its end
    assert wait_for(lambda: counts.leases() == 0)
    assert requests.post(url, json={"model": "gpt", **CHAT}, headers=headers, timeout=10).status_code == 200


def test_a_lease_of_a_process_that_died_lapses(alice, client_for, upstream_llm, clock, counts):
    limit = Limit.objects.create(user=alice, concurrent=1)
    counts.lease(f"concurrent:{limit.pk}", "dead", int(clock.time) - 1)
    assert chat(client_for(alice)).status_code == 200
    counts.lease(f"concurrent:{limit.pk}", "alive", int(clock.time) + 60)
    assert chat(client_for(alice)).status_code == 429


def test_the_last_request_of_a_window_goes_to_exactly_one_of_many_racing_threads(alice, upstream_llm, clock):
    limit = Limit.objects.create(user=alice, requests_per_minute=5)
    rule = admission.applicable(alice, "", upstream_llm)
    assert [r.id for r in rule] == [limit.pk]
    admitted, errors = [], []

    def race():
        try:
            admitted.append(admission.admit(alice, "", upstream_llm, {"messages": []}))
        except Exception as exc:  # noqa: BLE001 - the refusals are what is counted
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=race) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 5 and len(errors) == 15
    assert {getattr(e, "code", None) for e in errors} == {"rate_limited"}


def test_unreachable_counters_refuse_calls_under_a_limit_by_default(alice, client_for, upstream_llm, clock,
                                                                     monkeypatch, fake_upstream):
    Limit.objects.create(user=alice, requests_per_minute=100)

    def down(*args, **kwargs):
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(type(admission.counters()), "take", down)
    refused = chat(client_for(alice))
    assert refused.status_code == 503 and error_of(refused)["code"] == "limits_unavailable"
    assert fake_upstream.requests == []


def test_unreachable_counters_let_calls_through_when_failing_open(alice, client_for, upstream_llm, clock,
                                                                   monkeypatch, settings, caplog):
    settings.LIMITS_FAIL_OPEN = True
    Limit.objects.create(user=alice, requests_per_minute=100)
    monkeypatch.setattr(type(admission.counters()), "take",
                        lambda *a, **k: (_ for _ in ()).throw(StoreUnavailable("down")))
    assert chat(client_for(alice)).status_code == 200
    assert "limits not enforced" in caplog.text


def test_no_limit_no_counter_and_no_header(alice, client_for, upstream_llm, counts):
    answer = chat(client_for(alice))
    assert answer.status_code == 200 and "x-ratelimit-limit-requests" not in answer
    assert counts.empty()


# --- manage.py limit ---


def test_limit_set_list_and_clear(alice, upstream_llm, capsys):
    call_command("limit", "set", "--user", "alice", "--llm", "gpt", "--rpm", "30", "--budget", "5", "--period",
                 "month")
    limit = Limit.objects.get()
    assert (limit.user, limit.llm, limit.requests_per_minute, limit.budget, limit.period) == (
        alice, upstream_llm, 30, Decimal("5"), "month")
    call_command("limit", "set", "--user", "alice", "--llm", "gpt", "--concurrent", "2")  # the same subject: replaced
    limit = Limit.objects.get()
    assert (limit.requests_per_minute, limit.concurrent, limit.budget) == (None, 2, None)
    call_command("limit", "list")
    assert f"#{limit.pk} user alice on gpt: 2 at once" in capsys.readouterr().out
    call_command("limit", "clear", str(limit.pk))
    assert not Limit.objects.exists()


@pytest.mark.parametrize(("args", "match"), [
    (["--user", "nobody", "--rpm", "1"], "No user"),
    (["--everyone"], "at least one"),
    (["--everyone", "--budget", "5"], "period"),
    (["--everyone", "--rpm", "0"], "at least 1"),
    (["--everyone", "--llm", "missing", "--rpm", "1"], "No Llm"),
])
def test_limit_set_refuses_what_cannot_be_a_limit(db, args, match):
    with pytest.raises(CommandError, match=match):
        call_command("limit", "set", *args)
    assert not Limit.objects.exists()


def test_limit_changes_take_effect_at_once_in_this_process(alice, client_for, upstream_llm, clock, settings):
    settings.AUTH_CACHE_SECONDS = 300
    client = client_for(alice)
    assert chat(client).status_code == 200
    limit = Limit.objects.create(user=alice, requests_per_minute=1)
    assert chat(client).status_code == 200 and chat(client).status_code == 429
    limit.delete()
    assert chat(client).status_code == 200


def test_time_module_is_the_default_clock():
    assert abs(admission.now() - time.time()) < 5
