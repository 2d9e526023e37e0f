"""The usage dashboard's figures (/admin/usage/): calls, errors, tokens, cost and latency per Llm, per user
and per day over the last day, week or month (UTC days, today's included), read from the rollups alone:
one query grouped by day and Llm, one grouped by user, and the usernames of the users shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone

from audit.latency import BUCKETS, DURATION_COLUMNS, TTFT_COLUMNS, quantile
from audit.models import UsageDay
from audit.usage import FIGURES, SUMMED, Span

PERIODS = {"day": 1, "week": 7, "month": 30}  # the last N UTC days, today's included
DEFAULT_PERIOD = "week"
USERS_SHOWN = 50  # the busiest, by cost then calls; the usage API lists them all


@dataclass
class Figures:
    """What a set of rollups adds up to."""

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced_calls: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * BUCKETS)  # successful calls per bucket
    ttfts: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @classmethod
    def of(cls, row: dict[str, Any]) -> Figures:
        """From a row of Sum() annotations (None where no rollup was summed)."""
        return cls(**{name: row[name] or 0 for name in FIGURES if name != "cost"}, cost=row["cost"] or Decimal(0),
                   durations=[row[c] or 0 for c in DURATION_COLUMNS], ttfts=[row[c] or 0 for c in TTFT_COLUMNS])

    def add(self, other: Figures) -> None:
        """Add another set's figures to these."""
        for name in FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.durations = [a + b for a, b in zip(self.durations, other.durations, strict=True)]
        self.ttfts = [a + b for a, b in zip(self.ttfts, other.ttfts, strict=True)]

    @property
    def timed_calls(self) -> int:
        """The successful calls the latency figures are estimated from."""
        return sum(self.durations)

    @property
    def streams_timed(self) -> int:
        return sum(self.ttfts)

    @property
    def latency_p50(self) -> float | None:
        return quantile(self.durations, 0.5)

    @property
    def latency_p95(self) -> float | None:
        return quantile(self.durations, 0.95)

    @property
    def ttft_p50(self) -> float | None:
        return quantile(self.ttfts, 0.5)

    @property
    def ttft_p95(self) -> float | None:
        return quantile(self.ttfts, 0.95)


@dataclass
class Entry:
    """One row of a table: an Llm or a user."""

    label: str
    figures: Figures
    known: bool = True  # False: no Llm named, no user, a deleted user (the label says which)
    key: Any = None  # the Llm's name or the user's id


@dataclass
class Usage:
    """Everything the page shows for one period."""

    period: str
    span: Span
    days: list[date]
    llms: list[Entry]  # largest cost first, then most calls
    users: list[Entry]  # the USERS_SHOWN first, in the same order
    more_users: int
    total: Figures
    daily: dict[str, dict[date, Figures]]  # Llm name -> day -> figures (calls, errors and cost are used)


def period_span(period: str) -> Span:
    """The UTC days of a period ending today."""
    today = timezone.now().date()
    return Span(today - timedelta(days=PERIODS[period] - 1), today)


def _summed(queryset) -> Any:
    """The queryset's groups with every figure and bucket summed."""
    return queryset.annotate(**{name: Sum(name) for name in SUMMED}).order_by()


def usage(period: str) -> Usage:
    """The dashboard's figures for a period (one of PERIODS)."""
    span = period_span(period)
    rollups = UsageDay.objects.filter(day__gte=span.since, day__lte=span.until)
    daily: dict[str, dict[date, Figures]] = {}
    per_llm: dict[str, Figures] = {}
    total = Figures()
    for row in _summed(rollups.values("day", "llm_name")):
        figures = Figures.of(row)
        daily.setdefault(row["llm_name"], {})[row["day"]] = figures
        per_llm.setdefault(row["llm_name"], Figures()).add(figures)
        total.add(figures)
    llms = [Entry(name or "(no LLM named)", figures, known=bool(name), key=name) for name, figures in per_llm.items()]
    per_user = {row["user_id"]: Figures.of(row) for row in _summed(rollups.values("user_id"))}
    busiest = sorted(per_user.items(), key=lambda item: _order(item[1], str(item[0])))[:USERS_SHOWN]
    names = dict(get_user_model().objects.filter(pk__in=[uid for uid, _ in busiest if uid])
                 .values_list("pk", "username"))
    users = [Entry(names.get(uid) or (f"user #{uid} (deleted)" if uid else "(no user)"), figures,
                   known=uid in names, key=uid) for uid, figures in busiest]
    days = [span.since + timedelta(days=n) for n in range((span.until - span.since).days + 1)]
    return Usage(period, span, days, sorted(llms, key=lambda e: _order(e.figures, e.label)), users,
                 max(0, len(per_user) - USERS_SHOWN), total, daily)


def _order(figures: Figures, label: str) -> tuple:
    return -figures.cost, -figures.calls, label
