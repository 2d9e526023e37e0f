"""The latency buckets kept in the usage rollups: filled in the upsert of each batch of audit rows (successful
calls only; time to first token for streams), by the migration for the days whose rows are kept, and
by the bench's seed alike, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection

from audit import latency, rollups
from audit.latency import BUCKETS, DURATION_COLUMNS, TTFT_COLUMNS
from audit.models import INFERENCE, AuditEvent, UsageDay
from audit.writer import insert_rows
from tests.api.calls import infer, sse_body

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("audit.migrations.0007_usage_latency_buckets")


def buckets(row: UsageDay, columns) -> dict[str, int]:
    """A rollup's non-empty buckets of one measure."""
    return {column: getattr(row, column) for column in columns if getattr(row, column)}


def call(alice, llm_name="gpt", outcome="ok", duration_ms=None, ttft_ms=None, **fields) -> dict:
    return {"kind": INFERENCE, "user": alice, "actor": alice.username, "llm_name": llm_name, "outcome": outcome,
            "status": 200 if outcome == "ok" else 502, "duration_ms": duration_ms, "ttft_ms": ttft_ms,
            "request_id": f"r-{duration_ms}-{ttft_ms}-{outcome}", **fields}


def test_successful_calls_are_counted_in_their_latency_buckets(alice):
    insert_rows([call(alice, duration_ms=40), call(alice, duration_ms=50), call(alice, duration_ms=820, ttft_ms=120),
                 call(alice, duration_ms=700_000, ttft_ms=300, streaming=True),
                 call(alice, outcome="error", duration_ms=3), call(alice, outcome="client_disconnected",
                                                                    duration_ms=90_000, ttft_ms=200)])
    insert_rows([call(alice, duration_ms=45)])  # added to the same rollup by the next batch
    row = UsageDay.objects.get()
    assert row.calls == 7 and row.errors == 1
    assert buckets(row, DURATION_COLUMNS) == {"duration_ms_le_50": 3, "duration_ms_le_1000": 1,
                                              "duration_ms_gt_600000": 1}
    assert buckets(row, TTFT_COLUMNS) == {"ttft_ms_le_200": 1, "ttft_ms_le_300": 1}


def test_a_streamed_call_through_the_api_fills_both_histograms(alice, upstream_llm, client_for):
    response = infer(client_for(alice), body={"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    assert response.status_code == 200 and b"[DONE]" in sse_body(response)
    event = AuditEvent.objects.get(kind=INFERENCE)
    row = UsageDay.objects.get()
    assert event.ttft_ms is not None
    assert buckets(row, DURATION_COLUMNS) == {DURATION_COLUMNS[latency.bucket(event.duration_ms)]: 1}
    assert buckets(row, TTFT_COLUMNS) == {TTFT_COLUMNS[latency.bucket(event.ttft_ms)]: 1}


class Editor:
    """What the migration's function uses of a schema editor (SQLite's cannot open inside a test's transaction)."""

    connection = connection
    quote_name = staticmethod(connection.ops.quote_name)

    def execute(self, sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)


def test_the_migration_fills_the_buckets_of_existing_rollups_from_their_audit_rows(alice):
    insert_rows([call(alice, duration_ms=150, ttft_ms=90), call(alice, duration_ms=2500),
                 call(alice, outcome="error", duration_ms=1)])
    insert_rows([call(alice, llm_name="pruned", duration_ms=150)])
    AuditEvent.objects.filter(llm_name="pruned").delete()
    expected = {row.llm_name: (buckets(row, DURATION_COLUMNS), buckets(row, TTFT_COLUMNS))
                for row in UsageDay.objects.all()}
    UsageDay.objects.update(**{column: 0 for column in latency.BUCKET_COLUMNS})  # as the columns were added
    MIGRATION.fill_from_audit_rows(apps, Editor())
    filled = {row.llm_name: (buckets(row, DURATION_COLUMNS), buckets(row, TTFT_COLUMNS))
              for row in UsageDay.objects.all()}
    assert filled["gpt"] == expected["gpt"] == ({"duration_ms_le_200": 1, "duration_ms_le_3000": 1},
                                                {"ttft_ms_le_100": 1})
    assert filled["pruned"] == ({}, {})  # its rows are gone: nothing to fill from
    assert MIGRATION.BOUNDS_MS == latency.BOUNDS_MS  # the migration's frozen bounds are the code's


def test_the_bucket_sums_of_the_seed_match_the_rollups(alice):
    """audit.latency.bucket_sums_sql (the bench's seed) counts as the rollups do, on this database."""
    insert_rows([call(alice, duration_ms=ms, ttft_ms=ms // 3) for ms in (10, 50, 51, 999, 1000, 1001, 650_000)]
                + [call(alice, outcome="error", duration_ms=70)])
    sums = ", ".join(s for measure in latency.MEASURES for s in latency.bucket_sums_sql(measure))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sums} FROM {AuditEvent._meta.db_table} WHERE kind = %s", [INFERENCE])
        counted = [int(n or 0) for n in cursor.fetchone()]
    row = UsageDay.objects.get()
    assert counted == [getattr(row, column) for column in latency.BUCKET_COLUMNS]
    assert sum(counted[:BUCKETS]) == 7


def test_rollups_written_without_buckets_as_by_the_previous_code_still_insert(alice):
    """During a rolling deploy, servers on the previous code upsert the 8 sums alone: the buckets' database
    default takes the rest."""
    table = UsageDay._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (day, llm_name, user_id, token_sha, calls, errors, prompt_tokens, "
                       "completion_tokens, cache_read_tokens, cache_write_tokens, cost, unpriced_calls) "
                       "VALUES (%s, 'gpt', %s, '', 1, 0, 0, 0, 0, 0, 0, 1)", ["2026-12-01", alice.pk])
    row = UsageDay.objects.get()
    assert row.calls == 1 and not buckets(row, latency.BUCKET_COLUMNS)


def test_many_keys_are_upserted_in_chunks_and_added_to_on_the_next_batch(alice, monkeypatch):
    monkeypatch.setattr(rollups, "KEYS_PER_STATEMENT", 3)
    hostile = "x'); DROP TABLE audit_usageday; --"
    batch = [call(alice, llm_name=name, duration_ms=120, token_sha=f"{n:064x}", prompt_tokens=n, cost=Decimal("0.5"))
             for n, name in enumerate(["a", "b", "c", "d", hostile, "a", "b"])]
    insert_rows(batch)
    insert_rows(batch[:4])
    sums = {(row.llm_name, row.token_sha[-1]): (row.calls, row.prompt_tokens, row.cost, row.duration_ms_le_200)
            for row in UsageDay.objects.all()}
    assert len(sums) == 7
    assert sums[("a", "0")] == (2, 0, Decimal("1"), 2) and sums[("d", "3")] == (2, 6, Decimal("1"), 2)
    assert sums[(hostile, "4")] == (1, 4, Decimal("0.5"), 1) and sums[("b", "6")] == (1, 6, Decimal("0.5"), 1)


def test_the_usage_api_and_command_give_percentiles_estimated_from_the_buckets(alice, client_for, capsys):
    insert_rows([call(alice, duration_ms=40), call(alice, duration_ms=45),
                 call(alice, duration_ms=820, ttft_ms=120, streaming=True),
                 call(alice, duration_ms=2500, ttft_ms=300, streaming=True),
                 call(alice, outcome="error", duration_ms=3),  # a failure is not timed
                 call(alice, llm_name="slow", duration_ms=700_000),  # past the last bound (600 s)
                 call(alice, llm_name="refused", outcome="error", duration_ms=1)])
    body = client_for(alice).get("/api/v1/usage/?group_by=llm").json()
    by_llm = {entry["llm"]: entry for entry in body["data"]}
    percentiles = ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms")
    # durations: 2 in (0, 50], 1 in (750, 1000], 1 in (2000, 3000]; p50 ranks 2nd of 4, p95 3.8th
    assert [by_llm["gpt"][p] for p in percentiles] == [50, 2800, 200, 290]
    assert [by_llm["slow"][p] for p in percentiles] == [600_000, 600_000, None, None]
    assert [by_llm["refused"][p] for p in percentiles] == [None] * 4
    assert body["total"]["latency_p50_ms"] == 875 and body["total"]["calls"] == 7  # 2.5th of 5: in (750, 1000]
    assert not {c for entry in body["data"] for c in entry if c.startswith(("duration_ms_", "ttft_ms_"))}

    from django.core.management import call_command

    call_command("usage")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-8:] == ["p50", "ms", "p95", "ms", "ttft", "p50", "ttft", "p95"]
    assert next(line for line in lines if line.startswith("gpt")).split()[-4:] == ["50", "2800", "200", "290"]
    assert next(line for line in lines if line.startswith("refused")).split()[-4:] == ["-"] * 4
