"""Count events (failed logins, 401s) of a key in a scope per fixed window, shared through the database.

Every worker and host that shares the database sees the same counts: one row per (scope, key, window),
incremented by one atomic upsert. Rows of ended windows are deleted when a new window's first row is
written, so the table holds roughly the keys active in the current windows.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Q

from mcpd.middleware import client_ip
from mcpd.models import ThrottleCounter

MAX_KEY_LENGTH = 255  # ThrottleCounter.key; longer keys are stored as their digest


@dataclass(frozen=True)
class Limit:
    """At most `max_count` events of one key in `scope` per fixed window of `seconds`; 0 disables."""

    scope: str
    max_count: int
    seconds: int

    @property
    def enabled(self) -> bool:
        return self.max_count > 0

    def window(self, at: float) -> tuple[float, float]:
        """(start, end) in Unix time of the fixed window holding `at`."""
        start = at // self.seconds * self.seconds
        return start, start + self.seconds


@dataclass(frozen=True)
class Tally:
    """A key's count in the current window of a limit, and when that window ends (Unix time)."""

    limit: Limit
    count: int
    window_end: float

    @property
    def reached(self) -> bool:
        """The key has used up its limit: further events in this window are refused."""
        return self.limit.enabled and self.count >= self.limit.max_count

    def retry_after(self) -> int:
        """Whole seconds until the window ends and the key is free again."""
        return seconds_until(self.window_end)


def now() -> float:
    """The clock of every window (tests replace it)."""
    return time.time()


def seconds_until(at: float) -> int:
    """Whole seconds from now until Unix time `at`, rounded up, at least 1 (a Retry-After)."""
    return max(1, math.ceil(at - now()))


def _dt(at: float) -> datetime:
    return datetime.fromtimestamp(at, tz=UTC)


def _stored_key(key: str) -> str:
    return key if len(key) <= MAX_KEY_LENGTH else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def hit(limit: Limit, key: str) -> Tally:
    """Count one event of `key` now (one atomic statement); its count in this window, this one included."""
    start, end = limit.window(now())
    table = connection.ops.quote_name(ThrottleCounter._meta.db_table)
    scope_col, key_col, start_col, end_col, count_col = map(
        connection.ops.quote_name, ("scope", "key", "window_start", "window_end", "count"))
    # Portable: SQLite >= 3.35 and PostgreSQL both speak INSERT … ON CONFLICT … RETURNING.
    sql = (f"INSERT INTO {table} ({scope_col}, {key_col}, {start_col}, {end_col}, {count_col}) "
           f"VALUES (%s, %s, %s, %s, 1) "
           f"ON CONFLICT ({scope_col}, {key_col}, {start_col}) "
           f"DO UPDATE SET {count_col} = {table}.{count_col} + 1 RETURNING {count_col}")
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit.scope, _stored_key(key), adapt(_dt(start)), adapt(_dt(end))])
        (count,) = cursor.fetchone()
    if count == 1:  # the first event of a new window: the ended windows of every key can go
        prune()
    return Tally(limit, count, end)


def peek(*pairs: tuple[Limit, str]) -> list[Tally]:
    """The current counts of several (limit, key) pairs, in one query; disabled limits count 0."""
    at = now()
    windows = {(limit, key): limit.window(at) for limit, key in pairs if limit.enabled}
    counts: dict[tuple[str, str], int] = {}
    if windows:
        match = Q()
        for (limit, key), (start, _) in windows.items():
            match |= Q(scope=limit.scope, key=_stored_key(key), window_start=_dt(start))
        counts = {(scope, key): count for scope, key, count in
                  ThrottleCounter.objects.filter(match).values_list("scope", "key", "count")}
    return [Tally(limit, counts.get((limit.scope, _stored_key(key)), 0), limit.window(at)[1])
            for limit, key in pairs]


def prune() -> int:
    """Delete the rows of windows that have ended; how many went."""
    # No signal receivers and no relations: Django sends this as one DELETE, without reading the rows.
    return ThrottleCounter.objects.filter(window_end__lte=_dt(now())).delete()[0]


def address_of(request) -> str:
    """The key of the caller's address: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64)."""
    address = client_ip(request) or request.META.get("REMOTE_ADDR") or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class BlockMemo:
    """A process's memory of "key K is refused until T", learned from the shared counts.

    It lets a worker refuse a blocked key without a query; it never decides alone that a key is
    blocked (the database count does). Bounded: when full, ended entries go, and new ones are not kept.
    """

    def __init__(self, max_entries: int = 10_000):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def blocked_until(self, key: str) -> float | None:
        """When the block on `key` ends, if it is blocked now."""
        until = self._until.get(key)
        return until if until is not None and until > now() else None

    def remember(self, key: str, until: float) -> None:
        with self._lock:
            if key not in self._until and len(self._until) >= self.max_entries:
                at = now()
                self._until = {k: u for k, u in self._until.items() if u > at}
                if len(self._until) >= self.max_entries:
                    return
            self._until[key] = until

    def clear(self) -> None:
        with self._lock:
            self._until = {}
