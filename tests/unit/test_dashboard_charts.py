"""The usage dashboard's chart geometry and its figures as shown. No database."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal

import pytest

from audit.charts import OTHERS, OTHERS_FILL, axis, bars_per_entry, columns_per_day, nice_ticks
from audit.dashboard_page import count, duration, money


@pytest.mark.parametrize(("largest", "ticks"), [(0, [0, 1]), (3, [0, 1, 2, 3]), (10, [0, 2.5, 5, 7.5, 10]),
                                                (1204, [0, 500, 1000, 1500]), (0.0042, [0, 0.002, 0.004, 0.006])])
def test_gridlines_are_round_values_up_to_the_largest(largest, ticks):
    assert nice_ticks(largest) == pytest.approx(ticks)


def test_columns_stack_their_series_from_the_axis_up():
    days = [date(2026, 11, 29) + timedelta(days=n) for n in range(3)]
    chart = columns_per_day("c", "Calls per day", "calls", days,
                            [("gpt", {days[0]: 2, days[2]: 1})], count, others={days[0]: 2})
    first, second, third = chart.bars
    assert first.y + first.height == pytest.approx(chart.bottom) and second.y + second.height == pytest.approx(first.y)
    assert first.height == pytest.approx(second.height) and third.height == pytest.approx(first.height / 2, abs=0.1)
    assert [(s.label, s.fill) for s in chart.series] == [("gpt", 0), (OTHERS, OTHERS_FILL)]
    assert first.title == "2026-11-29, gpt: 2 calls"
    assert chart.rows[0] == ["2026-11-29", "2", "2", "4"] and chart.rows[1] == ["2026-11-30", "0", "0", "0"]
    assert "4" in chart.grid[-1].text and "the most on 2026-11-29" in chart.description


def test_bars_side_by_side_give_each_figure_and_reach_the_end_beyond_the_scale():
    chart = bars_per_entry("b", "Latency", "", [("gpt", (400, 1500)), ("slow", (2000, math.inf)), ("none", (None, None))],
                           ["p50", "p95"], duration)
    assert len(chart.bars) == 4
    assert chart.bars[3].width == pytest.approx(chart.right - chart.left)
    assert [v.text for v in chart.values] == ["400 ms", "1.5 s", "2.0 s", "over 10 min"]
    assert chart.rows[2] == ["none", "-", "-"]


def test_a_long_label_is_cut_on_the_axis_and_kept_whole_in_its_title():
    name = "a-very-long-llm-name-for-a-regional-deployment"
    chart = bars_per_entry("b", "Calls", "calls", [(name, (3, 1))], ["without error", "errors"], count, stacked=True)
    assert chart.labels[0].text.endswith("…") and len(chart.labels[0].text) <= 24
    assert chart.labels[0].title == name and chart.bars[0].title.startswith(name)
    assert chart.values[0].text == "4"


@pytest.mark.parametrize(("value", "shown"), [(Decimal(0), "0"), (Decimal("0.000234"), "0.000234"),
                                              (Decimal("0.123456"), "0.1235"), (Decimal("1234.5"), "1,234.50"),
                                              (2.5, "2.50"), (0.25, "0.25")])
def test_costs_keep_four_significant_digits_below_one(value, shown):
    assert money(value) == shown


@pytest.mark.parametrize(("ms", "shown"), [(None, "-"), (12.4, "12 ms"), (999, "999 ms"), (1500, "1.5 s"),
                                           (90_000, "1.5 min")])
def test_durations_are_shown_in_their_unit(ms, shown):
    assert duration(ms) == shown


def test_gridline_labels_have_the_decimals_of_their_step_and_counts_have_whole_steps():
    assert axis([0.0, 0.5, 1.0, 1.5], money, True) == ["0.0", "0.5", "1.0", "1.5"]
    assert axis([0.0, 500.0, 1000.0], count, True) == ["0", "500", "1,000"]
    assert axis([0.0, 1000.0, 2000.0], duration, False) == ["0 ms", "1.0 s", "2.0 s"]
    assert nice_ticks(10, whole=True) == [0, 5, 10] and nice_ticks(0.4, whole=True) == [0, 1]


def test_a_latency_above_the_last_bucket_is_shown_as_such():
    assert duration(math.inf) == "over 10 min"


def test_an_llm_named_like_the_others_is_not_drawn_as_them():
    day = date(2026, 12, 1)
    chart = columns_per_day("c", "Calls per day", "calls", [day], [("other LLMs", {day: 1})], count)
    assert [s.fill for s in chart.series] == [0]
