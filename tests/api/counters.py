"""The limit counters as a test reads and sets them, whichever store holds them (the database's Counter
and Lease rows, or Redis's keys): counts_of(store) for a store, counts_of(admission.counters()) for the
one calls are counted in."""

from __future__ import annotations

from limits.models import Counter, Lease
from limits.redis_store import RedisStore
from limits.store import CounterStore


class DatabaseCounts:
    """Counter and Lease rows."""

    def value(self, prefix: str) -> int | None:
        """The value of the one window whose key starts with `prefix`; None when there is none."""
        found = list(Counter.objects.filter(key__startswith=prefix).values_list("value", flat=True))
        assert len(found) <= 1, f"more than one window starts with {prefix}"
        return found[0] if found else None

    def set(self, prefix: str, value: int) -> None:
        assert Counter.objects.filter(key__startswith=prefix).update(value=value) == 1

    def lease(self, key: str, call_id: str, expires: int) -> None:
        Lease.objects.create(key=key, call_id=call_id, expires=expires)

    def leases(self, key: str = "") -> int:
        return Lease.objects.filter(key__startswith=key).count()

    def empty(self) -> bool:
        return not Counter.objects.exists() and not Lease.objects.exists()


class RedisCounts:
    """Keys under the store's prefix: strings for windows, sorted sets for leases."""

    def __init__(self, store: RedisStore) -> None:
        self.client, self.prefix = store.client, store.prefix

    def keys(self, prefix: str = "") -> list[str]:
        """The keys (without the store's prefix) that start with `prefix`."""
        return sorted(key.decode()[len(self.prefix):] for key in self.client.scan_iter(f"{self.prefix}{prefix}*"))

    def value(self, prefix: str) -> int | None:
        found = [key for key in self.keys(prefix) if not key.startswith("concurrent:")]
        assert len(found) <= 1, f"more than one window starts with {prefix}"
        value = self.client.get(self.prefix + found[0]) if found else None
        return None if value is None else int(value)

    def set(self, prefix: str, value: int) -> None:
        [key] = self.keys(prefix)
        self.client.set(self.prefix + key, value, keepttl=True)

    def lease(self, key: str, call_id: str, expires: int) -> None:
        self.client.zadd(self.prefix + key, {call_id: expires})

    def leases(self, key: str = "") -> int:
        return sum(self.client.zcard(self.prefix + found) for found in self.keys(key)
                   if found.startswith("concurrent:"))

    def empty(self) -> bool:
        return not self.keys()

    def clear(self) -> None:
        """Delete every key under the prefix (a test database starts empty; a Redis outlives the test)."""
        for key in self.client.scan_iter(f"{self.prefix}*"):
            self.client.delete(key)


def counts_of(store: CounterStore) -> DatabaseCounts | RedisCounts:
    """The reader and writer of the counters of that store."""
    return RedisCounts(store) if isinstance(store, RedisStore) else DatabaseCounts()
