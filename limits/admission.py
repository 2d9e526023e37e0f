"""Admission of one inference call under the limits that apply to it, before the upstream call, and
the settling of what it reserved once it has ended.

Requests per minute count 1. Tokens per minute and budgets reserve an estimate (the prompt's size
and the output limit; its price for a budget) and settle to the real usage after the call; a call
that ends without usage gives its reservation back unless it reached the provider. A call is
admitted while every window it counts in is under its cap. Windows are fixed: the minute, the UTC
day or month; Retry-After is the time until the window that refused it ends.
"""

from __future__ import annotations

import calendar
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.db.models import Q

from audit import writer
from limits.models import Limit, Period
from limits.store import Charge, Claim, CounterStore, DatabaseStore, StoreUnavailable, Taken
from mcpd import wirejson
from mcpd.errors import ApiError, RateLimited
from mcpd.memo import TtlMemo
from mcpd.metrics import LIMIT_REFUSALS

log = logging.getLogger(__name__)

NANO = 10**9  # budgets are counted in billionths of the currency (whole numbers in every store)
MINUTE = 60
LIMITS_UNAVAILABLE = "limits_unavailable"
RATE_LIMITED, BUDGET_EXCEEDED, CONCURRENCY_LIMITED = "rate_limited", "budget_exceeded", "concurrency_limited"
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


now = time.time  # the clock of every window (tests move it)


class LimitsUnavailable(ApiError):
    status, type, code = 503, "api_error", LIMITS_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Rule:
    """A Limit as calls meet it (read once per memo period, not per call)."""

    id: int
    subject: str
    rpm: int | None
    tpm: int | None
    concurrent: int | None
    budget: Decimal | None
    period: str


@dataclass
class Admission:
    """An admitted call's reservations, settled once by settle() when the call has ended."""

    call_id: str
    estimates: dict[str, tuple[str, int]]  # window key -> ("tokens" or "cost", the amount reserved)
    claimed: bool
    headers: dict[str, str] = field(default_factory=dict)

    def settle(self, fields: dict[str, Any]) -> None:
        """Give back the call's slots now; settle its reservations to its audit fields (its tokens and
        cost): with the audit writer's next batch, summed with other calls' per window, where a writer
        runs (the windows are behind by at most its interval, 0.1 s), else now."""
        if self.claimed:
            try:
                counters().release(self.call_id)
            except StoreUnavailable as exc:  # the slot lapses with its lease
                log.warning("could not give back the slots of call %s: %s", self.call_id, exc)
        deltas = {key: _actual(kind, fields, estimate) - estimate for key, (kind, estimate) in self.estimates.items()}
        if not any(deltas.values()):
            return
        if writer.running():
            writer.WRITER.settle(deltas)
        else:
            adjust(deltas)


def adjust(deltas: dict[str, int]) -> None:
    """Add the deltas to their windows; when the store cannot be reached, the reservations stay counted
    (an over-count until their windows end)."""
    try:
        counters().adjust(deltas)
    except StoreUnavailable as exc:
        log.warning("could not settle %d limit windows: %s", len(deltas), exc)


def admit(user: Any, token_sha: str, llm: Any, body: dict[str, Any]) -> Admission | None:
    """Admit the call under every limit that applies, or raise RateLimited (429, with Retry-After and
    the limit named in its detail) or LimitsUnavailable (503) when the counters cannot be reached and
    MCPD_LIMITS_FAIL_OPEN is off. None when no limit applies."""
    rules = applicable(user, token_sha, llm)
    if not rules:
        return None
    at = now()
    charges, claims, estimates = _charges(rules, llm, body, at)
    call_id = uuid.uuid4().hex
    try:
        taken = counters().take(charges, claims, call_id, int(at))
    except StoreUnavailable as exc:
        if settings.LIMITS_FAIL_OPEN:
            log.error("limits not enforced (MCPD_LIMITS_FAIL_OPEN): %s", exc)
            return None
        log.error("call refused: %s", exc)
        LIMIT_REFUSALS.labels("limits_unavailable").inc()
        raise LimitsUnavailable("mcpd cannot check its limits right now; try again shortly.",
                                retry_after="1", detail=str(exc)) from None
    if taken.refused is not None:
        refusal = _refusal(taken.refused, rules, at)
        LIMIT_REFUSALS.labels(refusal.code).inc()
        raise refusal
    return Admission(call_id, estimates, bool(claims), _headers(charges, taken, at))


# --- which limits apply ---

_rules = TtlMemo()


def applicable(user: Any, token_sha: str, llm: Any) -> list[Rule]:
    """The limits on this caller's calls to this Llm: the user's, their groups', the token's, everyone's,
    for this Llm or for every Llm."""
    # Whether any limit exists at all: known from the query that found the Llm (llm_to_run), else asked.
    any_limit = getattr(llm, "any_limit", None)
    if not (any_limit if any_limit is not None else _rules.get("any", Limit.objects.exists)):
        return []
    user_id = getattr(user, "pk", None)
    return _rules.get((user_id, token_sha, llm.pk), lambda: _load(user_id, token_sha, llm.pk))


def _load(user_id: int | None, token_sha: str, llm_id: int) -> list[Rule]:
    whose = Q(everyone=True)
    if user_id is not None:
        whose |= Q(user_id=user_id) | Q(group__user__id=user_id)
    if token_sha:
        whose |= Q(token__sha256=token_sha)
    found = Limit.objects.filter(whose, Q(llm__isnull=True) | Q(llm_id=llm_id)).select_related("user", "group")
    return [Rule(limit.pk, limit.subject, limit.requests_per_minute, limit.tokens_per_minute, limit.concurrent,
                 limit.budget, limit.period) for limit in found.distinct().order_by("id")]


# --- what a call counts ---


def _charges(rules: list[Rule], llm: Any, body: dict[str, Any], now: float
             ) -> tuple[list[Charge], list[Claim], dict[str, tuple[str, int]]]:
    minute = int(now // MINUTE)
    minute_ends = (minute + 1) * MINUTE + MINUTE  # the row outlives its window by a minute
    charges, claims, estimates = [], [], {}
    tokens = _estimate_tokens(llm, body) if any(r.tpm or r.budget is not None for r in rules) else (0, 0)
    for rule in rules:
        if rule.rpm:
            charges.append(Charge(f"rpm:{rule.id}:{minute}", 1, rule.rpm, minute_ends))
        if rule.tpm:
            key = f"tpm:{rule.id}:{minute}"
            charges.append(Charge(key, sum(tokens), rule.tpm, minute_ends))
            estimates[key] = ("tokens", sum(tokens))
        if rule.budget is not None:
            start, end = _period(rule.period, now)
            key = f"budget:{rule.id}:{start}"
            cost = _nanos(llm.prices.estimate(*tokens))
            charges.append(Charge(key, cost, _nanos(rule.budget), end + 86400))
            estimates[key] = ("cost", cost)
        if rule.concurrent:
            claims.append(Claim(f"concurrent:{rule.id}", rule.concurrent, int(now + settings.LIMITS_LEASE_SECONDS)))
    return charges, claims, estimates


def _estimate_tokens(llm: Any, body: dict[str, Any]) -> tuple[int, int]:
    """An upper-bound guess of a call's (prompt, completion) tokens: a token per 4 bytes of the body, and
    the output limit it asks for (the Llm's default when none)."""
    prompt = math.ceil(len(wirejson.dumps(body)) / 4)
    asked = next((body[name] for name in OUTPUT_FIELDS if isinstance(body.get(name), int)), None)
    return prompt, asked if asked is not None and asked > 0 else llm.default_max_tokens


def _actual(kind: str, fields: dict[str, Any], estimate: int) -> int:
    """What the call really used, for a reservation of that kind; the estimate when that is unknown for
    a call that reached the provider, nothing for one that failed before."""
    if kind == "tokens":
        prompt, completion = fields.get("prompt_tokens"), fields.get("completion_tokens")
        if prompt is not None or completion is not None:
            return (prompt or 0) + (completion or 0)
    elif fields.get("cost") is not None:
        return _nanos(fields["cost"])
    return 0 if fields.get("status", 200) >= 400 else estimate


def _nanos(amount: Decimal) -> int:
    return int((amount * NANO).to_integral_value())


def _period(period: str, now: float) -> tuple[str, int]:
    """The budget window holding `now`: its name and its end (Unix seconds)."""
    day = datetime.fromtimestamp(now, UTC).date()
    if period == Period.DAY:
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        return day.isoformat(), int(end.timestamp())
    last = calendar.monthrange(day.year, day.month)[1]
    end = datetime(day.year, day.month, last, tzinfo=UTC) + timedelta(days=1)
    return f"{day.year:04d}-{day.month:02d}", int(end.timestamp())


# --- answers ---


def _refusal(refused: Charge | Claim, rules: list[Rule], now: float) -> RateLimited:
    kind, rule_id = refused.key.split(":")[:2]
    rule = next(rule for rule in rules if str(rule.id) == rule_id)
    if kind == "concurrent":
        wait, code = 1, CONCURRENCY_LIMITED
        what = f"{rule.concurrent} calls at once"
    elif kind == "budget":
        wait, code = _period(rule.period, now)[1] - now, BUDGET_EXCEEDED
        what = f"a budget of {rule.budget} {settings.CURRENCY} per {rule.period}"
    else:
        wait, code = (int(now // MINUTE) + 1) * MINUTE - now, RATE_LIMITED
        what = f"{rule.rpm} requests per minute" if kind == "rpm" else f"{rule.tpm} tokens per minute"
    seconds = max(1, math.ceil(wait))
    return RateLimited(f"Limit reached: {what} for {_whom(rule)}. Retry in {seconds} s.", code=code,
                       retry_after=str(seconds), detail=f"refused by limit #{rule.id} ({rule.subject}): {what}")


def _whom(rule: Rule) -> str:
    return "all callers together" if rule.subject == "everyone" else rule.subject


def _headers(charges: list[Charge], taken: Taken, now: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the tightest requests and tokens windows."""
    headers = {}
    reset = f"{max(1, math.ceil((int(now // MINUTE) + 1) * MINUTE - now))}s"
    for kind, name in (("rpm", "requests"), ("tpm", "tokens")):
        windows = [(charge.cap - taken.values.get(charge.key, charge.amount), charge.cap) for charge in charges
                   if charge.key.startswith(kind + ":")]
        if windows:
            remaining, cap = min(windows)
            headers.update({f"x-ratelimit-limit-{name}": str(cap),
                            f"x-ratelimit-remaining-{name}": str(max(remaining, 0)),
                            f"x-ratelimit-reset-{name}": reset})
    return headers


@cache
def counters() -> CounterStore:
    """The process's counter store: Redis when REDIS_URL is set, else the database."""
    if settings.REDIS_URL:
        from limits.redis_store import RedisStore

        return RedisStore(settings.REDIS_URL)
    return DatabaseStore()

