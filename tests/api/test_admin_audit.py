"""The admin's audit and usage pages at scale: no page counts a whole table or reads every row for its
filters, the counts shown stay honest ("about", "more than"), paging works, and both are read-only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import INFERENCE, AuditEvent, UsageDay
from audit.paging import PAGES_AHEAD, Counted

pytestmark = pytest.mark.django_db

PER_PAGE = 5  # so that a few dozen rows span more pages than the paginator counts ahead
COUNTED = (1 + PAGES_AHEAD) * PER_PAGE  # rows counted for the first page, beyond which "more than"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def small_pages(monkeypatch):
    for model in (AuditEvent, UsageDay):
        monkeypatch.setattr(admin.site._registry[model], "list_per_page", PER_PAGE)


@pytest.fixture
def calls(small_pages, llm, alice) -> list[AuditEvent]:
    """2 x COUNTED + 30 inference calls by alice on `gpt`, every third an error; then one change row."""
    rows = AuditEvent.objects.bulk_create([
        AuditEvent(kind=INFERENCE, user=alice, actor="alice", token_sha=f"{i:064x}", llm_name=llm.name,
                   provider="openai", status=502 if i % 3 == 0 else 200, outcome="error" if i % 3 == 0 else "ok",
                   request_id=f"req-{i:04d}")
        for i in range(2 * COUNTED + 30)])
    AuditEvent.objects.create(kind="token.revoked", actor="root", object_type="apitoken", object_repr="key")
    return rows


def reads(url: str, client) -> tuple[str, list[str]]:
    """The page's HTML and the SQL it ran that could read every row of an audit table (see unbounded)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode(), [q["sql"] for q in queries.captured_queries if not few(q["sql"], response)]


def few(sql: str, response) -> bool:
    """The page's rows fetched without a LIMIT, as Django does when they were counted exactly and fit
    on the page (or under "Show all"): bounded by the count."""
    cl = response.context_data["cl"]
    return (sql.startswith(f'SELECT "{cl.opts.db_table}"."id", ') and cl.paginator.counted == Counted.EXACT
            and cl.result_count <= cl.list_max_show_all)


# What a page may read of a table without a LIMIT: two ends of the primary key (the table's size, when
# its ids are dense), and the kinds of the change rows (two ranges of the kind index).
INDEX_LOOKUPS = ('SELECT MIN("audit_auditevent"."id") AS "low", MAX("audit_auditevent"."id") AS "high" '
                 'FROM "audit_auditevent"',
                 'SELECT DISTINCT "audit_auditevent"."kind" AS "kind" FROM "audit_auditevent" WHERE '
                 '("audit_auditevent"."kind" < \'llm_inference_call\' OR "audit_auditevent"."kind" > '
                 '\'llm_inference_call\')')


def unbounded(sqls: list[str], table: str) -> list[str]:
    """Statements that may read every (matching) row of the table: a COUNT or any other statement
    without a LIMIT (the default paginator, the full result count, facets, a field's list filter,
    date_hierarchy), bar the two index lookups above."""
    return [sql for sql in sqls if f'"{table}"' in sql and " LIMIT " not in sql
            and not any(sql.startswith(lookup) for lookup in INDEX_LOOKUPS)]


AUDIT = "/admin/audit/auditevent/"
PAGES = [AUDIT, AUDIT + "?p=3", AUDIT + "?outcome__exact=error", AUDIT + "?outcome__exact=error&p=2",
         AUDIT + "?q=req-0042", AUDIT + "?q=alice", AUDIT + "?kind=changes", AUDIT + "?kind=llm_inference_call",
         AUDIT + "?llm_name=gpt", AUDIT + "?status_class=5", AUDIT + "?provider=openai", AUDIT + "?streaming__exact=1",
         AUDIT + "?created_at__gte=2000-01-01+00%3A00%3A00%2B00%3A00", AUDIT + "?_facets=1",
         AUDIT + "?outcome__exact=error&_facets=1", AUDIT + "?o=-1", AUDIT + "?all="]


@pytest.mark.parametrize("url", PAGES)
def test_no_audit_page_reads_every_row(url, admin_client, calls):
    _, sqls = reads(url, admin_client)
    assert not unbounded(sqls, "audit_auditevent")
    assert any("COUNT(" in sql and "LIMIT" in sql for sql in sqls)  # the paginator counted, within bounds


def linked(html: str) -> set[int]:
    """The pks of the rows a changelist page links to."""
    return {int(pk) for pk in re.findall(r'href="/admin/audit/\w+/(\d+)/change/', html)}


def test_the_first_page_shows_the_newest_rows_and_the_table_size_without_counting_it(admin_client, calls):
    html, _ = reads(AUDIT, admin_client)
    change = AuditEvent.objects.latest("id")
    assert linked(html) == {change.pk, *(row.pk for row in calls[-PER_PAGE + 1:])}
    total = AuditEvent.objects.count()  # the calls, the change, and the fixtures' changes
    assert f"about {total} audit events" in html  # MAX(id) - MIN(id) + 1: ids are dense
    assert f'href="?p={(total + PER_PAGE - 1) // PER_PAGE}"' in html  # a link to the last page


def test_paging_on_reaches_the_oldest_rows(admin_client, calls):
    last = (AuditEvent.objects.count() + PER_PAGE - 1) // PER_PAGE
    html, _ = reads(f"{AUDIT}?p={last}", admin_client)
    assert AuditEvent.objects.earliest("id").pk in linked(html)
    assert admin_client.get(f"{AUDIT}?p={last + 1}").status_code == 302  # past the end: Django's ?e=1


def test_a_filter_beyond_the_counted_pages_says_more_than(admin_client, calls):
    html, _ = reads(AUDIT + "?outcome__exact=ok", admin_client)
    ok = sum(1 for row in calls if row.outcome == "ok")
    assert ok > COUNTED and f"more than {COUNTED:,} results" in html
    assert f"more than {COUNTED:,} audit events" in html
    page = ok // PER_PAGE - PAGES_AHEAD + 1  # counting reaches further as one pages on: here, to the end
    far = reads(f"{AUDIT}?outcome__exact=ok&p={page}", admin_client)[0]
    assert f"{ok} audit events" in far and "more than" not in far


def test_a_few_matches_are_counted_exactly(admin_client, calls):
    changes = AuditEvent.objects.exclude(kind=INFERENCE)
    assert 1 < changes.count() < PER_PAGE  # the fixtures' changes (Llm, secret, grant) and the revocation
    html, _ = reads(AUDIT + "?kind=changes", admin_client)
    assert f"{changes.count()} results" in html and f"{changes.count()} audit events" in html
    assert linked(html) == {row.pk for row in changes}
    html, _ = reads(AUDIT + "?kind=token.revoked", admin_client)
    assert "1 result" in html and re.search(r"\b1 audit event\b", html)


def test_search_matches_whole_values_each_served_by_an_index(admin_client, calls):
    html, _ = reads(AUDIT + "?q=req-0042", admin_client)
    assert "1 result" in html
    assert "0 results" in reads(AUDIT + "?q=req-004", admin_client)[0]  # no prefix, no substring
    assert f"more than {COUNTED:,} results" in reads(AUDIT + "?q=alice", admin_client)[0]
    assert "1 result" in reads(AUDIT + f"?q={calls[7].token_sha}", admin_client)[0]


def test_the_audit_admin_sorts_by_time_only(admin_client, calls):
    def order_of(url: str) -> str:
        _, sqls = reads(url, admin_client)
        page = next(sql for sql in sqls if sql.startswith('SELECT "audit_auditevent"."id", "audit_auditevent".'))
        return page.split(" ORDER BY ")[1].split(" LIMIT ")[0]

    for order in ("8", "-8", "1.2", "-2"):  # prompt_tokens, then kind and actor: ignored, the newest first
        assert set(re.findall(r'"audit_auditevent"\."(\w+)"', order_of(f"{AUDIT}?o={order}"))) <= {"created_at", "id"}
    assert order_of(f"{AUDIT}?o=0").startswith('"audit_auditevent"."created_at" ASC')  # created_at, oldest first


# --- usage per day


@pytest.fixture
def rollups(small_pages, alice, token_for, llm) -> list[UsageDay]:
    today = timezone.now().date()
    return UsageDay.objects.bulk_create([
        UsageDay(day=today - timedelta(days=i // 2), llm_name=llm.name if i % 2 else "other", user_id=alice.pk,
                 token_sha="f" * 64, calls=10 + i, errors=i % 2, prompt_tokens=100, completion_tokens=50, cost="0.25")
        for i in range(COUNTED + 20)])


USAGE = "/admin/audit/usageday/"


@pytest.mark.parametrize("url", [USAGE, USAGE + "?p=4", USAGE + "?llm_name=gpt", USAGE + "?o=5", USAGE + "?_facets=1"])
def test_no_usage_page_reads_every_row(url, admin_client, rollups):
    _, sqls = reads(url, admin_client)
    assert not unbounded(sqls, "audit_usageday")


def test_the_usage_page_lists_the_rollups_with_their_user(admin_client, rollups):
    html, _ = reads(USAGE, admin_client)
    assert "alice" in html and "0.25" in html and "usage per day" in html
    assert len(linked(html)) == PER_PAGE and f"more than {COUNTED:,}" in html  # no estimate: ids have gaps


def test_the_usage_page_filters_by_day_and_llm(admin_client, rollups):
    today = timezone.now().date()
    url = f"{USAGE}?llm_name=gpt&day__gte={today}&day__lt={today + timedelta(days=1)}"
    html, _ = reads(url, admin_client)
    assert linked(html) == {r.pk for r in rollups if r.day == today and r.llm_name == "gpt"}
    assert "1 usage per day" in html


def test_usage_rows_cannot_be_added_changed_or_deleted(admin_client, rollups):
    row = rollups[0]
    html, _ = reads(USAGE, admin_client)
    assert "/admin/audit/usageday/add/" not in html and 'name="action"' not in html
    assert admin_client.get(USAGE + "add/").status_code == 403
    assert admin_client.post(f"{USAGE}{row.pk}/change/", {"calls": 0}).status_code == 403
    assert admin_client.post(f"{USAGE}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageDay.objects.get(pk=row.pk).calls == row.calls
