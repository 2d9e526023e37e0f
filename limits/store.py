"""Where limit counters live, shared by every worker and host: the database (Counter and Lease rows), or
Redis when REDIS_URL is set (limits/redis_store.py). No count is ever kept in one process.

A call is admitted while each of its windows is under its cap: the check and the increment are one
atomic step per store (one upsert statement in the database; one script in Redis), so N processes
racing for the last request of a window let exactly one through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar

from django.db import connection, transaction

from audit.writer import off_the_hub
from limits.models import Counter, Lease

SWEEP_EVERY = 60.0  # seconds between deletions of expired counter rows, per process
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Charge:
    """Add `amount` to the window `key` if its value is under `cap`; the row may go at `expires`."""

    key: str
    amount: int
    cap: int
    expires: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Hold one of `cap` slots of `key` for the call until released, or until `expires` if never released."""

    key: str
    cap: int
    expires: int


@dataclass(frozen=True, slots=True)
class Taken:
    """What take() did: `refused` names the first charge or claim over its cap (nothing was taken then);
    otherwise `values` holds each charged window's value after the call's amount."""

    refused: Charge | Claim | None
    values: dict[str, int]


class StoreUnavailable(Exception):
    """The counters could not be read or written (the database or Redis is down)."""


class CounterStore(Protocol):
    """What admission asks of a counter store: DatabaseStore below, or RedisStore (limits/redis_store.py)."""

    def take(self, charges: Sequence[Charge], claims: Sequence[Claim], call_id: str, now: int) -> Taken:
        """All the charges and claims, or none: admitted while each is under its cap; atomic across hosts."""
        ...

    def adjust(self, deltas: dict[str, int]) -> None:
        """Add each delta to its window, if the window still exists."""
        ...

    def release(self, call_id: str) -> None:
        """Give back the call's concurrency slots."""
        ...

    def cool(self, key: str, until: int) -> None:
        """Mark `key` cooling down until then (a later mark already there stays)."""
        ...

    def cooling(self, keys: Sequence[str], now: int) -> set[str]:
        """Those of the keys still cooling down at `now`."""
        ...


class DatabaseStore:
    """Counters as rows: INSERT … ON CONFLICT DO UPDATE … WHERE value < cap RETURNING, on PostgreSQL and
    SQLite alike; concurrency slots as Lease rows, counted under the lock of their key's counter row."""

    def __init__(self) -> None:
        self._swept = 0.0

    def take(self, charges: Sequence[Charge], claims: Sequence[Claim], call_id: str, now: int) -> Taken:
        if claims:
            return _run(self._take_with_claims, charges, claims, call_id, now)
        return _run(self._charge, charges)

    def adjust(self, deltas: dict[str, int]) -> None:
        """Add each delta to its window (a settled reservation: the real amount less the estimate)."""
        _run(self._adjust, deltas)

    def release(self, call_id: str) -> None:
        """Give back the call's concurrency slots."""
        _run(self._release, call_id)

    def cool(self, key: str, until: int) -> None:
        """A counter row whose `expires` is the end of the cool-down (swept with the windows)."""
        _run(self._cool, key, until)

    def cooling(self, keys: Sequence[str], now: int) -> set[str]:
        return _run(self._cooling, keys, now) if keys else set()

    def _cool(self, key: str, until: int) -> None:
        table = _table(Counter)
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} (key, value, cap, expires) VALUES (%s, 0, 0, %s) "
                           f"ON CONFLICT (key) DO UPDATE SET expires = excluded.expires "
                           f"WHERE {table}.expires < excluded.expires", [key, until])

    def _cooling(self, keys: Sequence[str], now: int) -> set[str]:
        marks = ", ".join(["%s"] * len(keys))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT key FROM {_table(Counter)} WHERE key IN ({marks}) AND expires > %s",
                           [*keys, now])
            return {key for (key,) in cursor.fetchall()}

    def _adjust(self, deltas: dict[str, int]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {_table(Counter)} SET value = value + %s WHERE key = %s",
                               [(delta, key) for key, delta in sorted(deltas.items()) if delta])
        self._sweep()

    def _release(self, call_id: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {_table(Lease)} WHERE call_id = %s", [call_id])

    def _charge(self, charges: Sequence[Charge]) -> Taken:
        """One statement: each window gets its amount only if under its cap. If one is refused, what the
        statement gave the others is taken back (a moment's over-count of them, never an under-count)."""
        if not charges:
            return Taken(None, {})
        with connection.cursor() as cursor:
            cursor.execute(_upsert(len(charges)), [value for charge in sorted(charges, key=_key)
                                                   for value in (charge.key, charge.amount, charge.cap,
                                                                 charge.expires)])
            values = dict(cursor.fetchall())
            refused = next((charge for charge in charges if charge.key not in values), None)
            if refused is not None and values:
                cursor.executemany(f"UPDATE {_table(Counter)} SET value = value - %s WHERE key = %s",
                                   [(charge.amount, charge.key) for charge in sorted(charges, key=_key)
                                    if charge.key in values])
        return Taken(refused, {} if refused else values)

    def _take_with_claims(self, charges: Sequence[Charge], claims: Sequence[Claim], call_id: str, now: int) -> Taken:
        """In one transaction: lock each claimed key's counter row, count its live leases, then charge."""
        with transaction.atomic(), connection.cursor() as cursor:
            locks = sorted(claims, key=_key)
            cursor.execute(_lock(len(locks)), [value for claim in locks for value in (claim.key, claim.expires)])
            keys = [claim.key for claim in locks]
            marks = ", ".join(["%s"] * len(keys))
            cursor.execute(f"DELETE FROM {_table(Lease)} WHERE key IN ({marks}) AND expires < %s", [*keys, now])
            cursor.execute(f"SELECT key, COUNT(*) FROM {_table(Lease)} WHERE key IN ({marks}) GROUP BY key", keys)
            held = dict(cursor.fetchall())
            full = next((claim for claim in claims if held.get(claim.key, 0) >= claim.cap), None)
            if full is not None:
                return Taken(full, {})
            taken = self._charge(charges)
            if taken.refused is not None:
                return taken
            cursor.executemany(f"INSERT INTO {_table(Lease)} (key, call_id, expires) VALUES (%s, %s, %s)",
                               [(claim.key, call_id, claim.expires) for claim in locks])
            return taken

    def _sweep(self) -> None:
        """Now and then, delete the rows of windows that have ended."""
        now = time.time()
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {_table(Counter)} WHERE expires < %s", [int(now)])
            cursor.execute(f"DELETE FROM {_table(Lease)} WHERE expires < %s", [int(now)])


def _run(work: Callable[..., T], *args: Any) -> T:
    """The work on the database, any failure a StoreUnavailable. On SQLite, off the gevent hub (its calls,
    and its waits for the write lock, would hold up every other call of the worker); PostgreSQL's
    driver yields to the other greenlets while it waits, so the work runs here."""
    try:
        return off_the_hub(work, *args) if connection.vendor == "sqlite" else work(*args)
    except Exception as exc:
        raise StoreUnavailable(f"the limit counters in the database: {type(exc).__name__}: {exc}") from exc


def _key(item: Charge | Claim) -> str:
    return item.key  # rows are always locked in key order: two calls cannot deadlock


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@cache
def _upsert(rows: int) -> str:
    table = _table(Counter)
    values = ", ".join(["(%s, %s, %s, %s)"] * rows)
    return (f"INSERT INTO {table} (key, value, cap, expires) VALUES {values} "
            f"ON CONFLICT (key) DO UPDATE SET value = {table}.value + excluded.value, cap = excluded.cap "
            f"WHERE {table}.value < excluded.cap RETURNING key, value")


@cache
def _lock(rows: int) -> str:
    """Creates the claimed keys' rows, or locks them (PostgreSQL: the row lock until commit; SQLite:
    the write lock of the whole database)."""
    table = _table(Counter)
    values = ", ".join(["(%s, 0, 0, %s)"] * rows)
    return (f"INSERT INTO {table} (key, value, cap, expires) VALUES {values} "
            f"ON CONFLICT (key) DO UPDATE SET expires = excluded.expires")
