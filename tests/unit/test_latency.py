"""The latency buckets of the usage rollups and the percentiles estimated from them. No database."""

from __future__ import annotations

import math
import random

import pytest

from audit.latency import BOUNDS_MS, BUCKETS, DURATION_COLUMNS, TTFT_COLUMNS, bucket, quantile


def counts_of(samples: list[int]) -> list[int]:
    counts = [0] * BUCKETS
    for ms in samples:
        counts[bucket(ms)] += 1
    return counts


@pytest.mark.parametrize(("ms", "index"), [(0, 0), (50, 0), (51, 1), (100, 1), (101, 2), (1000, 6), (1001, 7),
                                           (600_000, 15), (600_001, 16), (10**9, 16)])
def test_a_call_is_counted_in_the_bucket_whose_upper_bound_it_does_not_exceed(ms, index):
    assert bucket(ms) == index


def test_the_bucket_columns_are_named_by_their_bounds():
    assert len(DURATION_COLUMNS) == len(TTFT_COLUMNS) == BUCKETS == len(BOUNDS_MS) + 1
    assert DURATION_COLUMNS[0] == "duration_ms_le_50" and DURATION_COLUMNS[-1] == "duration_ms_gt_600000"
    assert TTFT_COLUMNS[6] == "ttft_ms_le_1000"
    assert list(BOUNDS_MS) == sorted(set(BOUNDS_MS))


def test_nothing_counted_has_no_percentile():
    assert quantile([0] * BUCKETS, 0.5) is None


def test_a_percentile_is_interpolated_linearly_within_its_bucket():
    counts = [0] * BUCKETS
    counts[2] = 10  # ten calls in (100, 200] ms
    assert quantile(counts, 0.5) == pytest.approx(150)
    assert quantile(counts, 0.95) == pytest.approx(195)
    assert quantile(counts, 1.0) == pytest.approx(200)
    counts[0] = 10  # and ten in [0, 50]: the median is the first bucket's top
    assert quantile(counts, 0.5) == pytest.approx(50)
    assert quantile(counts, 0.25) == pytest.approx(25)
    assert quantile(counts, 0.75) == pytest.approx(150)


def test_a_percentile_above_the_last_bound_is_infinite():
    counts = [0] * BUCKETS
    counts[-1], counts[0] = 10, 90
    assert quantile(counts, 0.5) == pytest.approx(50 * 50 / 90)
    assert quantile(counts, 0.95) == math.inf


@pytest.mark.parametrize("seed", range(5))
def test_the_estimate_lies_in_the_bucket_of_the_exact_percentile(seed):
    """Whatever the distribution, the estimate is off by at most its bucket's width."""
    rng = random.Random(seed)
    samples = [int(rng.lognormvariate(7, 1.1)) for _ in range(2000)]
    counts = counts_of(samples)
    ordered = sorted(samples)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        estimate = quantile(counts, q)
        index = bucket(exact)
        lower = BOUNDS_MS[index - 1] if index else 0
        upper = BOUNDS_MS[index] if index < len(BOUNDS_MS) else math.inf
        assert lower <= estimate <= upper, (q, exact, estimate)


def test_buckets_add_up_across_rollups_as_the_calls_would():
    rng = random.Random(7)
    first, second = ([int(rng.expovariate(1 / 800)) for _ in range(500)] for _ in range(2))
    summed = [a + b for a, b in zip(counts_of(first), counts_of(second), strict=True)]
    assert summed == counts_of(first + second)
