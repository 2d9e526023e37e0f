"""Where a call goes: the Llm's deployments (its own base URL, secret and model, then its Deployment rows),
in a weighted random order, those cooling down last; and what makes a deployment cool down.

A deployment that refused a connection or answered 429/500/502/503/529 is skipped by every worker and
host for MCPD_COOLDOWN_SECONDS (or the provider's longer Retry-After): the mark lives in the limits'
counter store (the database, or Redis), and each process reads an Llm's marks at most once per
COOLING_READ_SECONDS, so a call to an Llm with one deployment, or in the steady state, asks nothing.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from django.conf import settings

from llms.models import Llm
from mcpd.memo import TtlMemo
from secrets_app.models import Secret

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 529})
COOLING_READ_SECONDS = 1.0  # how stale a process's view of the fleet's cool-downs may be


@dataclass(frozen=True, slots=True)
class Route:
    """One deployment as a call uses it. `id` is "0" for the Llm's own fields, else the Deployment's pk."""

    llm_pk: int
    id: str
    base_url: str
    model: str
    secret: Secret | None
    weight: int

    @property
    def cool_key(self) -> str:
        return cool_key(self.llm_pk, self.id)


def cool_key(llm_pk: int, route_id: str) -> str:
    """The counter store's key that marks a deployment of an Llm cooling down (route_id "0": its own)."""
    return f"cool:{llm_pk}:{route_id}"


_routes = TtlMemo()


def routes_of(llm: Llm) -> tuple[Route, ...]:
    """The Llm's enabled deployments, its own first (remembered like the Llm: mcpd/memo.py)."""
    return _routes.get(llm.pk, lambda: _load_routes(llm))


def _load_routes(llm: Llm) -> tuple[Route, ...]:
    own = Route(llm.pk, "0", llm.effective_base_url, llm.model, llm.api_key_secret, llm.weight)
    if not getattr(llm, "has_deployments", True):  # known from the query that found it (llm_to_run)
        return (own,)
    others = llm.deployments.filter(enabled=True).select_related("api_key_secret").order_by("id")
    return (own, *(Route(llm.pk, str(d.pk), d.effective_base_url, d.model or llm.model, d.api_key_secret, d.weight)
                   for d in others))


def order(routes: tuple[Route, ...], cooling: set[str]) -> list[Route]:
    """Every route once: by weight (each draw takes a route with probability weight/total of those left),
    standbys (weight 0) after them, the routes cooling down last (still tried, should all fail)."""
    def rank(route: Route) -> tuple[int, float]:
        drawn = random.random() ** (1.0 / route.weight) if route.weight else 0.0
        return (route.cool_key in cooling, -drawn)

    if len(routes) == 1:
        return list(routes)
    return sorted(routes, key=rank)


# llm pk -> (monotonic time the marks were read, the keys cooling then)
_cooling_seen: dict[int, tuple[float, set[str]]] = {}


def cooling(routes: tuple[Route, ...]) -> set[str]:
    """The cool keys of the routes cooling down, as this process last read them (at most a second old).
    The counter store unreachable: none (a call is not refused for want of a routing hint)."""
    if len(routes) < 2:
        return set()
    llm_pk, now = routes[0].llm_pk, time.monotonic()
    seen = _cooling_seen.get(llm_pk)
    if seen is not None and now - seen[0] < COOLING_READ_SECONDS:
        return seen[1]
    from limits.admission import counters
    from limits.store import StoreUnavailable

    try:
        keys = counters().cooling([route.cool_key for route in routes], int(time.time()))
    except StoreUnavailable as exc:
        log.warning("could not read the cool-downs of Llm #%s: %s", llm_pk, exc)
        keys = set()
    _cooling_seen[llm_pk] = (now, keys)
    return keys


def cool_down(route: Route, retry_after: float | None = None) -> None:
    """Skip the route for MCPD_COOLDOWN_SECONDS, or the provider's Retry-After when longer, everywhere."""
    seconds = max(settings.COOLDOWN_SECONDS, retry_after or 0.0)
    if seconds <= 0:
        return
    seen = _cooling_seen.get(route.llm_pk)
    _cooling_seen[route.llm_pk] = (seen[0] if seen else time.monotonic(), {*(seen[1] if seen else ()), route.cool_key})
    from limits.admission import counters
    from limits.store import StoreUnavailable

    try:
        counters().cool(route.cool_key, int(time.time() + seconds) + 1)
    except StoreUnavailable as exc:
        log.warning("could not mark deployment %s of Llm #%s cooling down: %s", route.id, route.llm_pk, exc)


def forget_cooling() -> None:
    _cooling_seen.clear()
