"""The admin's usage dashboard (/admin/usage/): the figures of audit/dashboard.py as tables and SVG charts,
for staff with audit.view_auditevent (superusers included). Everything is rendered on the server: the
page runs no script and loads nothing but the admin's own stylesheets."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from audit.charts import Chart, bars_per_entry, columns_per_day
from audit.dashboard import DEFAULT_PERIOD, PERIODS, USERS_SHOWN, Entry, Figures, Usage, usage
from audit.latency import BOUNDS_MS

VIEW_ALL = "audit.view_auditevent"
DAILY_SERIES = 5  # Llms drawn apart in the charts per day; the rest are added up (charts.OTHERS)
LLM_BARS = 12  # Llms in the charts per Llm (the table lists them all)
PERIOD_NAMES = {"day": "Today", "week": "Last 7 days", "month": "Last 30 days"}


def count(value: float) -> str:
    """A count with thousands separated (a tenth where a gridline falls between whole numbers)."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def money(value: float | Decimal) -> str:
    """A cost: cents from 1 up, four significant digits below (a call often costs a fraction of a cent)."""
    value = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.{max(2, 3 - value.adjusted())}f}".rstrip("0").rstrip(".")


def duration(ms: float | None) -> str:
    """Milliseconds as read at a glance; above the last bucket's bound, only that it is above."""
    if ms is None:
        return "-"
    if math.isinf(ms):
        return f"over {BOUNDS_MS[-1] // 60000} min"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def percent(part: int, whole: int) -> str:
    """A share to a tenth of a percent; "-" of nothing."""
    return f"{100 * part / whole:.1f}%" if whole else "-"


def row(entry: Entry, link: str | None) -> dict[str, Any]:
    """A table row, every figure as shown."""
    f = entry.figures
    return {"label": entry.label, "known": entry.known, "link": link, "calls": count(f.calls),
            "errors": count(f.errors), "error_rate": percent(f.errors, f.calls),
            "prompt_tokens": count(f.prompt_tokens), "completion_tokens": count(f.completion_tokens),
            "cost": money(f.cost), "unpriced_calls": f.unpriced_calls, "unpriced": count(f.unpriced_calls),
            "latency_p50": duration(f.latency_p50), "latency_p95": duration(f.latency_p95),
            "ttft_p50": duration(f.ttft_p50), "ttft_p95": duration(f.ttft_p95),
            "timed_calls": count(f.timed_calls), "streams_timed": count(f.streams_timed)}


def audit_link(**query: str) -> str:
    """The audit events' list, filtered (an Llm) or searched (a username)."""
    return f"{reverse('admin:audit_auditevent_changelist')}?{urlencode(query)}"


def per_day(data: Usage, figure: str) -> tuple[list[tuple[str, dict]], dict | None]:
    """The DAILY_SERIES Llms with the most of `figure` over the period, each per day, and what the others
    add up to per day (None when there are none)."""
    def value(figures: Figures) -> float:
        return float(getattr(figures, figure))

    ranked = sorted(data.daily, key=lambda name: (-sum(value(f) for f in data.daily[name].values()), name))
    ranked = [name for name in ranked if any(value(f) for f in data.daily[name].values())]
    shown = ranked if len(ranked) <= DAILY_SERIES + 1 else ranked[:DAILY_SERIES]
    series = [(name or "(no LLM named)", {day: value(f) for day, f in data.daily[name].items()}) for name in shown]
    others: dict | None = None
    for name in ranked[len(shown):]:
        others = others or {}
        for day, f in data.daily[name].items():
            others[day] = others.get(day, 0) + value(f)
    return series, others


def priced(figures: Figures) -> float | None:
    """The cost to draw; None (no bar, "-") when no call had a price: unpriced usage is not free."""
    return None if figures.unpriced_calls == figures.calls and not figures.cost else float(figures.cost)


def charts(data: Usage) -> list[Chart]:
    """The page's charts, in order: per day, then per Llm."""
    currency = settings.CURRENCY
    llms = data.llms[:LLM_BARS]
    calls, cost = per_day(data, "calls"), per_day(data, "cost")
    return [
        columns_per_day("chart-calls-per-day", "Calls per day", "calls", data.days, calls[0], count, others=calls[1],
                        whole=True),
        columns_per_day("chart-cost-per-day", f"Cost per day ({currency})", currency, data.days, cost[0], money,
                        others=cost[1]),
        bars_per_entry("chart-calls-per-llm", "Calls per LLM", "calls",
                       [(e.label, (e.figures.calls - e.figures.errors, e.figures.errors)) for e in llms],
                       ["without error", "errors"], count, stacked=True, whole=True),
        bars_per_entry("chart-cost-per-llm", f"Cost per LLM ({currency})", currency,
                       [(e.label, (priced(e.figures),)) for e in llms], ["cost"], money),
        bars_per_entry("chart-latency-per-llm", "Latency per LLM (estimated from buckets)", "",
                       [(e.label, (e.figures.latency_p50, e.figures.latency_p95)) for e in llms], ["p50", "p95"],
                       duration, plain_axis=False),
        bars_per_entry("chart-ttft-per-llm", "Time to first token per LLM (streams; estimated from buckets)", "",
                       [(e.label, (e.figures.ttft_p50, e.figures.ttft_p95)) for e in llms], ["p50", "p95"],
                       duration, plain_axis=False),
    ]


def usage_dashboard(request: HttpRequest) -> HttpResponse:
    """The dashboard for ?period=day|week|month (default week). Reached through admin_view: staff only."""
    if not request.user.has_perm(VIEW_ALL):
        raise PermissionDenied("The usage dashboard needs the permission to view audit events.")
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    data = usage(period)
    total = Entry("All calls", data.total)
    context = {
        **admin.site.each_context(request),
        "title": "Usage",
        "period": period,
        "periods": [{"key": key, "name": PERIOD_NAMES[key], "current": key == period,
                     "url": "?" + urlencode({"period": key})} for key in PERIODS],
        "usage": data,
        "currency": settings.CURRENCY,
        "total": row(total, None),
        "llm_rows": [row(e, audit_link(llm_name=e.key) if e.known else None) for e in data.llms],
        "user_rows": [row(e, audit_link(q=e.label) if e.known else None) for e in data.users],
        "users_shown": USERS_SHOWN,
        "charts": charts(data),
        "llm_bars": LLM_BARS,
        "bounds": f"{BOUNDS_MS[0]} ms … {BOUNDS_MS[-1] // 60000} min",
    }
    return TemplateResponse(request, "admin/audit/usage_dashboard.html", context)
