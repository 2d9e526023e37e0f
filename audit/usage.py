"""Usage figures: calls, errors, tokens, cost and latency percentiles per Llm, user, group or token over a
span of days, read from the rollups (audit.models.UsageDay), never from audit rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone

from audit.latency import BUCKET_COLUMNS, DURATION_COLUMNS, TTFT_COLUMNS, quantile_ms
from audit.models import UsageDay
from mcpd.errors import InvalidRequest
from mcpd.models import ApiToken

GROUP_BY = ("llm", "user", "group", "token")
DEFAULT_DAYS = 30  # since, when not given: the last 30 days, today's included
FIGURES = ("calls", "errors", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens",
           "cost", "unpriced_calls")
SUMMED = (*FIGURES, *BUCKET_COLUMNS)  # the latency buckets are summed, then read as percentiles
# Estimated from the successful calls' buckets (audit/latency.py); null when none was timed.
PERCENTILES = {"latency_p50_ms": (DURATION_COLUMNS, 0.5), "latency_p95_ms": (DURATION_COLUMNS, 0.95),
               "ttft_p50_ms": (TTFT_COLUMNS, 0.5), "ttft_p95_ms": (TTFT_COLUMNS, 0.95)}
_COLUMNS = {"llm": "llm_name", "user": "user_id", "group": "user_id", "token": "token_sha"}


@dataclass(frozen=True)
class Span:
    """Days (UTC), both ends included."""

    since: date
    until: date

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Span:
        """From YYYY-MM-DD strings; the last DEFAULT_DAYS days by default."""
        end = _day(until, "until") if until else timezone.now().date()
        start = _day(since, "since") if since else _days_before(end, DEFAULT_DAYS - 1)
        if start > end:
            raise InvalidRequest("since: must not be after until.", param="since")
        return cls(start, end)


def _days_before(day: date, days: int) -> date:
    """The day `days` before, or the first day there is (date.min: one earlier would overflow)."""
    return day - timedelta(days=days) if day - date.min >= timedelta(days=days) else date.min


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name}: must be a date, YYYY-MM-DD.", param=name) from None


def usage(group_by: str, span: Span, *, user_id: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The figures per group, largest cost first, and of every call; only one user's calls when user_id is
    given. By group, a call counts for each group its user is in now (under null for a user in none), and
    once in the total."""
    if group_by not in GROUP_BY:
        raise InvalidRequest(f"group_by: must be one of {', '.join(GROUP_BY)}.", param="group_by")
    rollups = UsageDay.objects.filter(day__gte=span.since, day__lte=span.until)
    if user_id is not None:
        rollups = rollups.filter(user_id=user_id)
    column = _COLUMNS[group_by]
    sums = {row[column]: row for row in rollups.values(column).annotate(**{f: Sum(f) for f in SUMMED}).order_by()}
    entries = {"llm": _by_llm, "user": _by_user, "group": _by_group, "token": _by_token}[group_by](sums)
    entries.sort(key=lambda entry: (-entry["cost"], -entry["calls"], str(entry[group_by])))
    total = _figures(rollups.aggregate(**{f: Sum(f) for f in SUMMED}))
    return [_with_percentiles(entry) for entry in entries], _with_percentiles(total)


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    return {figure: row[figure] or (Decimal(0) if figure == "cost" else 0) for figure in SUMMED}


def _with_percentiles(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its bucket counts read as percentiles."""
    buckets = {column: entry.pop(column) for column in BUCKET_COLUMNS}
    for name, (columns, q) in PERCENTILES.items():
        entry[name] = quantile_ms([buckets[column] for column in columns], q)
    return entry


def _by_llm(sums: dict) -> list[dict[str, Any]]:
    return [{"llm": name or None, **_figures(row)} for name, row in sums.items()]


def _by_user(sums: dict) -> list[dict[str, Any]]:
    names = dict(get_user_model().objects.filter(pk__in=list(sums)).values_list("pk", "username"))
    return [{"user": names.get(uid) if uid else None, "user_id": uid or None, **_figures(row)}
            for uid, row in sums.items()]


def _by_group(sums: dict) -> list[dict[str, Any]]:
    memberships = get_user_model().groups.through.objects.filter(user_id__in=list(sums))
    groups_of: dict[int, list[str]] = defaultdict(list)
    for uid, name in memberships.values_list("user_id", "group__name"):
        groups_of[uid].append(name)
    added: dict[str | None, dict[str, Any]] = {}
    for uid, row in sums.items():
        for name in groups_of.get(uid) or [None]:
            entry = added.setdefault(name, {"group": name, **{f: Decimal(0) if f == "cost" else 0 for f in SUMMED}})
            for figure, value in _figures(row).items():
                entry[figure] += value
    return list(added.values())


def _by_token(sums: dict) -> list[dict[str, Any]]:
    tokens = {token.sha256: token for token in ApiToken.objects.filter(sha256__in=list(sums)).select_related("user")}
    entries = []
    for sha, row in sums.items():
        token = tokens.get(sha)
        described = {"token": token.name if token else None, "token_id": token.pk if token else None,
                     "user": token.user.username if token else None}
        entries.append({**described, **_figures(row)})
    return entries
