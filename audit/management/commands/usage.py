"""manage.py usage — everyone's usage, from the rollups, as a table."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.usage import FIGURES, GROUP_BY, PERCENTILES, Span, usage
from mcpd.errors import InvalidRequest

COST_SHOWN = Decimal("0.000001")
HEADINGS = {"calls": "calls", "errors": "errors", "prompt_tokens": "prompt", "completion_tokens": "completion",
            "cache_read_tokens": "cache read", "cache_write_tokens": "cache write", "cost": "cost",
            "unpriced_calls": "unpriced", "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms",
            "ttft_p50_ms": "ttft p50", "ttft_p95_ms": "ttft p95"}
SHOWN = (*FIGURES, *PERCENTILES)


class Command(BaseCommand):
    help = ("Print calls, errors, tokens, cost and latency percentiles per Llm, user, group or token (from the "
            "usage rollups).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--by", choices=GROUP_BY, default="llm")
        parser.add_argument("--since", help="YYYY-MM-DD (default: 29 days before --until)")
        parser.add_argument("--until", help="YYYY-MM-DD (default: today, UTC)")

    def handle(self, *, by: str, since: str | None, until: str | None, **_) -> None:
        try:
            span = Span.parse(since, until)
        except InvalidRequest as exc:
            raise CommandError(exc.message.replace("since:", "--since:").replace("until:", "--until:")) from None
        entries, total = usage(by, span)
        rows = [[_label(entry, by), *(_cell(entry[f], f) for f in SHOWN)] for entry in entries]
        rows.append(["total", *(_cell(total[f], f) for f in SHOWN)])
        headings = [by, *(HEADINGS[f] + (f" ({settings.CURRENCY})" if f == "cost" else "") for f in SHOWN)]
        widths = [max(len(str(cell)) for cell in column) for column in zip(headings, *rows, strict=True)]
        self.stdout.write(f"Usage from {span.since} to {span.until} (UTC days, both included)")
        for line in [headings, *rows]:
            self.stdout.write("  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                                        for i, (cell, width) in enumerate(zip(line, widths, strict=True))))


def _label(entry: dict, by: str) -> str:
    value = entry[by]
    if value is None:
        return {"llm": "(none)", "user": "(no user)", "group": "(no group)", "token": "(no token)"}[by]
    if by == "token":
        return f"{value or '#' + str(entry['token_id'])} ({entry['user']})"
    return str(value)


def _cell(value, figure: str) -> str:
    if value is None:  # a percentile of no timed call
        return "-"
    return format(value.quantize(COST_SHOWN), "f") if figure == "cost" else str(value)
