"""The admin's usage dashboard: its figures for seeded rollups, its periods and charts, who may see it,
that it never reads an audit row, and that it escapes what users typed (Llm names, usernames)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.latency import DURATION_COLUMNS, TTFT_COLUMNS
from audit.models import INFERENCE, AuditEvent, UsageDay

pytestmark = pytest.mark.django_db

URL = "/admin/usage/"


def rollup(day, llm_name, user_id, calls, *, errors=0, cost="0", durations=(), ttfts=(), **figures) -> UsageDay:
    """A rollup row; durations/ttfts: (bucket index, count) pairs."""
    counts = {DURATION_COLUMNS[i]: n for i, n in durations} | {TTFT_COLUMNS[i]: n for i, n in ttfts}
    return UsageDay(day=day, llm_name=llm_name, user_id=user_id, token_sha="", calls=calls, errors=errors,
                    cost=Decimal(cost), **figures, **counts)


@pytest.fixture
def seeded(alice, admin_user):
    """Rollups over 40 days: gpt (priced) and claude today, for alice and root; gpt also 3 and 20 days ago."""
    today = timezone.now().date()
    return UsageDay.objects.bulk_create([
        rollup(today, "gpt", alice.pk, 10, errors=1, cost="0.5", prompt_tokens=1000, completion_tokens=200,
               durations=[(6, 9)], ttfts=[(2, 4)]),  # nine calls in (750, 1000] ms; four first tokens in (100, 200]
        rollup(today, "claude", admin_user.pk, 4, cost="1.25", unpriced_calls=1, durations=[(8, 4)]),
        rollup(today - timedelta(days=3), "gpt", alice.pk, 6, cost="0.25", durations=[(6, 6)]),
        rollup(today - timedelta(days=20), "gpt", alice.pk, 100, cost="7", durations=[(10, 100)]),
        rollup(today - timedelta(days=35), "gpt", alice.pk, 1000, cost="70", durations=[(15, 1000)]),
    ])


@pytest.fixture
def root_client(client, admin_user):
    client.force_login(admin_user)
    return client


def table(html: str, table_id: str) -> list[list[str]]:
    """A table's body rows as the text of their cells."""
    body = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_the_dashboard_shows_the_week_per_llm_and_per_user(seeded, root_client):
    response = root_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "estimated from buckets" in html and 'aria-current="page"' in html
    llms = table(html, "usage-llms")
    # LLM, calls, errors, tokens in, out, cost, latency p50, p95, first token p50, p95 (claude costs most)
    assert llms[0] == ["claude", "4", "0 0.0%", "0", "0", "1.25 +1 unpriced", "1.8 s", "2.0 s", "-", "-"]
    assert llms[1][:6] == ["gpt", "16", "1 6.2%", "1,000", "200", "0.75"]
    assert llms[1][6:] == ["875 ms", "988 ms", "150 ms", "195 ms"]  # 15 calls in (750, 1000], 4 in (100, 200]
    users = table(html, "usage-users")
    assert [(u[0], u[1]) for u in users] == [("root", "4"), ("alice", "16")]
    assert 'href="/admin/audit/auditevent/?llm_name=gpt"' in html and 'href="/admin/audit/auditevent/?q=alice"' in html


@pytest.mark.parametrize(("period", "gpt_calls", "days"), [("day", "10", 1), ("week", "16", 7), ("month", "116", 30)])
def test_each_period_is_its_last_utc_days(seeded, root_client, period, gpt_calls, days):
    html = root_client.get(URL, {"period": period}).content.decode()
    gpt = next(row for row in table(html, "usage-llms") if row[0] == "gpt")
    assert gpt[1] == gpt_calls
    since = timezone.now().date() - timedelta(days=days - 1)
    assert f"{since:%Y-%m-%d}" in html


def test_the_charts_draw_the_calls_per_day_and_per_llm(seeded, root_client):
    html = root_client.get(URL, {"period": "week"}).content.decode()
    today = timezone.now().date()
    calls = re.search(r'<figure class="usage-chart" id="chart-calls-per-day">(.*?)</figure>', html, re.S).group(1)
    assert 'role="img"' in calls and "<title" in calls and "<desc" in calls
    titles = re.findall(r'<rect class="usage-bar"[^>]*><title>(.*?)</title>', calls)
    assert titles == [f"{today - timedelta(days=3):%Y-%m-%d}, gpt: 6 calls", f"{today:%Y-%m-%d}, gpt: 10 calls",
                      f"{today:%Y-%m-%d}, claude: 4 calls"]
    per_llm = re.search(r'id="chart-calls-per-llm">(.*?)</figure>', html, re.S).group(1)
    assert re.findall(r"<title>(.*?)</title>", per_llm) == ["claude, without error: 4 calls", "gpt, without error: 15 calls",
                                                                 "gpt, errors: 1 calls"]
    assert "<script" not in html.split('<div id="content-main">')[1]  # server-rendered: no script at all
    cost = re.search(r'id="chart-cost-per-llm">(.*?)</figure>', html, re.S).group(1)
    assert re.findall(r"<title>(.*?)</title>", cost) == ["claude, cost: 1.25 USD", "gpt, cost: 0.75 USD"]


def test_an_empty_period_says_so(admin_user, root_client):
    html = root_client.get(URL, {"period": "day"}).content.decode()
    assert "No calls in this period." in html and "Nothing to show for this period." in html


def test_an_unknown_period_falls_back_to_the_week(seeded, root_client):
    html = root_client.get(URL, {"period": "year'><script>"}).content.decode()
    assert next(row for row in table(html, "usage-llms") if row[0] == "gpt")[1] == "16"
    assert "<script>" not in html


def test_the_dashboard_reads_no_audit_row(seeded, root_client):
    AuditEvent.objects.create(kind=INFERENCE, llm_name="gpt", outcome="ok")
    for period in ("day", "week", "month"):
        with CaptureQueriesContext(connection) as queries:
            assert root_client.get(URL, {"period": period}).status_code == 200
        sql = [q["sql"] for q in queries.captured_queries]
        assert not [s for s in sql if AuditEvent._meta.db_table in s], sql
        assert sum(UsageDay._meta.db_table in s for s in sql) == 2  # grouped by day and Llm, by user


def test_the_admin_index_links_the_dashboard_for_those_who_may_see_it(root_client, bob, client):
    assert f'href="{URL}"' in root_client.get("/admin/").content.decode()
    client.force_login(bob)  # staff, without view_auditevent
    assert f'href="{URL}"' not in client.get("/admin/").content.decode()


def test_staff_with_view_auditevent_see_it(seeded, bob, client):
    bob.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(bob)
    assert client.get(URL).status_code == 200
    assert f'href="{URL}"' in client.get("/admin/").content.decode()


def test_staff_without_view_auditevent_are_refused(seeded, bob, client):
    client.force_login(bob)
    response = client.get(URL)
    assert response.status_code == 403 and "claude" not in response.content.decode()


def test_a_user_who_is_not_staff_gets_the_login_page(seeded, carol, client):
    carol.user_permissions.add(Permission.objects.get(codename="view_auditevent"))  # not staff: still no admin
    client.force_login(carol)
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.logout()
    assert client.get(URL).status_code == 302


def test_hostile_llm_names_and_usernames_are_escaped(alice, root_client):
    today = timezone.now().date()
    hostile = User.objects.create_user('<img src=x onerror="alert(1)">', password="pw-hostile-1234")
    UsageDay.objects.bulk_create([
        rollup(today, '<script>alert("llm")</script>', hostile.pk, 3, cost="1", durations=[(3, 3)]),
        rollup(today, "x</title><script>alert(2)</script>", alice.pk, 2, durations=[(3, 2)]),
    ])
    html = root_client.get(URL, {"period": "day"}).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "</title><script>" not in html
    assert "&lt;script&gt;alert(&quot;llm&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "x&lt;/title&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html  # in the bars' titles too
    assert "?llm_name=%3Cscript%3Ealert%28%22llm%22%29%3C%2Fscript%3E" in html


def test_calls_without_an_llm_or_a_user_are_shown_as_such(admin_user, root_client):
    UsageDay.objects.create(day=timezone.now().date(), llm_name="", user_id=0, calls=5, errors=5)
    UsageDay.objects.create(day=timezone.now().date(), llm_name="gpt", user_id=987654, calls=1)
    html = root_client.get(URL, {"period": "day"}).content.decode()
    assert [row[:3] for row in table(html, "usage-llms")] == [["(no LLM named)", "5", "5 100.0%"], ["gpt", "1", "0 0.0%"]]
    assert {row[0] for row in table(html, "usage-users")} == {"(no user)", "user #987654 (deleted)"}


def test_beyond_five_llms_the_charts_per_day_add_up_the_others(admin_user, root_client):
    today = timezone.now().date()
    UsageDay.objects.bulk_create([rollup(today, f"llm-{n}", admin_user.pk, 10 + n) for n in range(8)])
    html = root_client.get(URL, {"period": "day"}).content.decode()
    calls = re.search(r'id="chart-calls-per-day">(.*?)</figure>', html, re.S).group(1)
    legend = re.findall(r'<li><svg[^>]*><rect[^>]*fill="url\(#usage-fill-(\d)\)"/></svg>(.*?)</li>', calls)
    assert legend == [("0", "llm-7"), ("1", "llm-6"), ("2", "llm-5"), ("3", "llm-4"), ("4", "llm-3"), ("6", "other LLMs")]
    assert f"{today:%Y-%m-%d}, other LLMs: 33 calls" in calls  # 10 + 11 + 12


def test_an_llm_without_prices_has_no_cost_bar_rather_than_a_zero(admin_user, root_client):
    UsageDay.objects.create(day=timezone.now().date(), llm_name="local", user_id=admin_user.pk, calls=3,
                            unpriced_calls=3)
    html = root_client.get(URL, {"period": "day"}).content.decode()
    cost = re.search(r'id="chart-cost-per-llm">(.*?)</figure>', html, re.S).group(1)
    assert "usage-bar" not in cost and "<td>-</td>" in cost
