"""Usage rollups: each batch of inference audit rows adds its sums to UsageDay, in the same transaction
as the rows' INSERT, so a batch counts exactly once whatever fails (both are written, or neither).

Rows are aggregated per key before the upsert (one statement per key, not per call: a row that every
call updated in place would serialise the fleet on its lock), and the keys are upserted in one order,
so that two workers' batches cannot deadlock. The latency histograms' buckets (audit/latency.py) are sums
like the others: one more count per call, in the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection

from audit.latency import BUCKET_COLUMNS, BUCKETS, bucket
from audit.models import Outcome, UsageDay

KEY = ("day", "llm_name", "user_id", "token_sha")
SUMS = ("calls", "errors", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cost",
        "unpriced_calls", *BUCKET_COLUMNS)
DURATIONS = 8  # where the buckets start in a key's sums: duration's, then time to first token's
TTFTS = DURATIONS + BUCKETS


def sums_by_key(rows: Iterable[dict[str, Any]], day: date) -> dict[tuple, list]:
    """The rows' sums per rollup key (an audit row's fields: user an object or None)."""
    totals: dict[tuple, list] = {}
    for row in rows:
        user = row.get("user")
        key = (day, row.get("llm_name") or "", getattr(user, "pk", None) or 0, row.get("token_sha") or "")
        sums = totals.get(key)
        if sums is None:
            sums = totals[key] = [0, 0, 0, 0, 0, 0, Decimal(0), 0, *[0] * (2 * BUCKETS)]
        cost, outcome = row.get("cost"), row.get("outcome")
        sums[0] += 1
        sums[1] += outcome == Outcome.ERROR
        sums[2] += row.get("prompt_tokens") or 0
        sums[3] += row.get("completion_tokens") or 0
        sums[4] += row.get("cache_read_tokens") or 0
        sums[5] += row.get("cache_write_tokens") or 0
        if cost is None:
            sums[7] += 1
        else:
            sums[6] += cost
        if outcome == Outcome.OK:
            if (duration := row.get("duration_ms")) is not None:
                sums[DURATIONS + bucket(duration)] += 1
            if (ttft := row.get("ttft_ms")) is not None:
                sums[TTFTS + bucket(ttft)] += 1
    return totals


def add(rows: list[dict[str, Any]], day: date) -> None:
    """Add the rows' sums to the rollups (inside the caller's transaction)."""
    totals = sums_by_key(rows, day)
    if not totals:
        return
    day_field, cost_field = UsageDay._meta.get_field("day"), UsageDay._meta.get_field("cost")
    params = [[day_field.get_db_prep_save(key[0], connection), *key[1:], *sums[:6],
               cost_field.get_db_prep_save(sums[6], connection), *sums[7:]]
              for key, sums in sorted(totals.items())]
    with connection.cursor() as cursor:
        cursor.executemany(_upsert(), params)


@cache
def _upsert() -> str:
    quote = connection.ops.quote_name
    table = quote(UsageDay._meta.db_table)
    columns = [quote(UsageDay._meta.get_field(name).column) for name in (*KEY, *SUMS)]
    keys = ", ".join(columns[:len(KEY)])
    added = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in columns[len(KEY):])
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({keys}) DO UPDATE SET {added}")
