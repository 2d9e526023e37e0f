"""Usage rollups: each batch of inference audit rows adds its sums to UsageDay, in the same transaction
as the rows' INSERT, so a batch counts exactly once whatever fails (both are written, or neither).

Rows are aggregated per key before the upsert (a key's row is written once per batch, not once per call:
a row that every call updated in place would serialise the fleet on its lock), and the keys are upserted
in one order, so that two workers' batches cannot deadlock. The latency histograms' buckets (audit/latency.py) are sums
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
    totals = sorted(sums_by_key(rows, day).items())
    if not totals:
        return
    day_field, cost_field = UsageDay._meta.get_field("day"), UsageDay._meta.get_field("cost")
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":  # SQLite binds natively: one prepared statement, run per key
            cursor.executemany(_upsert(), [[day_field.get_db_prep_save(key[0], connection), *key[1:], *sums[:6],
                                            cost_field.get_db_prep_save(sums[6], connection), *sums[7:]]
                                           for key, sums in totals])
            return
        # Django's PostgreSQL cursors bind on the client: a statement per key would be sent and parsed whole,
        # and quoting each parameter costs microseconds. So one statement per KEYS_PER_STATEMENT keys, with the
        # counts (integers mcpd computed) written as literals and only the texts, the day and the cost bound.
        for start in range(0, len(totals), KEYS_PER_STATEMENT):
            chunk = totals[start:start + KEYS_PER_STATEMENT]
            values, params = [], []
            for (when, llm_name, user_id, token_sha), sums in chunk:
                counts, more = ", ".join(map(_integer, sums[:6])), ", ".join(map(_integer, sums[7:]))
                values.append(f"(%s, %s, {_integer(user_id)}, %s, {counts}, %s, {more})")
                params += [day_field.get_db_prep_save(when, connection), llm_name, token_sha,
                           cost_field.get_db_prep_save(sums[6], connection)]
            head, tail = _upsert_parts()
            cursor.execute(f"{head} {', '.join(values)} {tail}", params)


KEYS_PER_STATEMENT = 1000  # keys are distinct within a statement (a row may be updated once per statement)


def _integer(value: Any) -> str:
    return str(int(value))  # int(): nothing but digits reaches the statement


@cache
def _upsert() -> str:
    head, tail = _upsert_parts()
    return f"{head} ({', '.join(['%s'] * (len(KEY) + len(SUMS)))}) {tail}"


@cache
def _upsert_parts() -> tuple[str, str]:
    """INSERT ... VALUES, and ON CONFLICT ... DO UPDATE adding each sum to the row's."""
    quote = connection.ops.quote_name
    table = quote(UsageDay._meta.db_table)
    columns = [quote(UsageDay._meta.get_field(name).column) for name in (*KEY, *SUMS)]
    keys = ", ".join(columns[:len(KEY)])
    added = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in columns[len(KEY):])
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES", f"ON CONFLICT ({keys}) DO UPDATE SET {added}"
