"""Latency histograms in the usage rollups: each UsageDay row counts its successful calls in fixed buckets
of duration and of time to first token, so that percentiles over any span of days, Llms and users are
estimated from the rollups alone (added up bucket by bucket), never from audit rows.

Buckets are not cumulative: bucket i counts the calls with BOUNDS_MS[i-1] < ms <= BOUNDS_MS[i]
(the first from 0, the last above the last bound). Only calls whose outcome is ok are counted: a refused
or failed call's few milliseconds say nothing of how fast an Llm answers. Time to first token is counted
for the streams that had one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds in milliseconds, denser where interactive calls and first tokens fall (0.2-3 s).
BOUNDS_MS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 20000, 40000, 100000, 600000)
MEASURES = ("duration_ms", "ttft_ms")  # the audit row's fields, and the prefixes of the bucket columns


def columns(measure: str) -> tuple[str, ...]:
    """The UsageDay columns of one measure's buckets, in order: `duration_ms_le_50` … `duration_ms_gt_600000`."""
    return (*(f"{measure}_le_{bound}" for bound in BOUNDS_MS), f"{measure}_gt_{BOUNDS_MS[-1]}")


DURATION_COLUMNS = columns("duration_ms")
TTFT_COLUMNS = columns("ttft_ms")
BUCKET_COLUMNS = DURATION_COLUMNS + TTFT_COLUMNS
BUCKETS = len(BOUNDS_MS) + 1


def bucket(ms: int) -> int:
    """The index of the bucket that counts a call of `ms` milliseconds."""
    return bisect_left(BOUNDS_MS, ms)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0-1) in milliseconds estimated from one measure's bucket counts, interpolated
    linearly within its bucket (as Prometheus's histogram_quantile does); math.inf when it lies above the
    last bound; None when nothing was counted."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            if index == len(BOUNDS_MS):
                return math.inf
            lower = BOUNDS_MS[index - 1] if index else 0
            return lower + (BOUNDS_MS[index] - lower) * (rank - below) / count
        below += count
    return math.inf  # unreachable for 0 <= q <= 1


def quantile_ms(counts: Sequence[int], q: float) -> int | None:
    """quantile() in whole milliseconds, for the usage API: one above the last bound is that bound (as
    Prometheus's histogram_quantile answers for its +Inf bucket); None when nothing was counted."""
    value = quantile(counts, q)
    if value is None:
        return None
    return BOUNDS_MS[-1] if math.isinf(value) else round(value)


def bucket_sums_sql(measure: str, column: str | None = None) -> list[str]:
    """SQL sums over audit rows that fill one measure's bucket columns (for rollups built from rows in
    bulk: the bench's seed). `column` is the row's column (default: the measure)."""
    column = column or measure
    ok = "outcome = 'ok'"
    lowers = (None, *BOUNDS_MS)
    uppers = (*BOUNDS_MS, None)
    sums = []
    for lower, upper in zip(lowers, uppers, strict=True):
        conditions = [ok, f"{column} IS NOT NULL"]
        if lower is not None:
            conditions.append(f"{column} > {lower}")
        if upper is not None:
            conditions.append(f"{column} <= {upper}")
        sums.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END)")
    return sums
