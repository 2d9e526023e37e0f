"""Limit counters in Redis (REDIS_URL), shared by every worker and host like the database's rows, with the
same semantics as limits.store.DatabaseStore.

A window is a string key holding its count, with an EXPIREAT at its Charge's `expires`; a concurrency key
is a sorted set of leases (member: the call's id, score: when the lease lapses), which expires with its
last lease. take() is one Lua script, run atomically by Redis: every charge and claim is checked before
any is taken. Keys are prefixed (PREFIX); one Redis server holds them all (not Redis Cluster: a call's
keys would have to share a hash slot).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from limits.store import SWEEP_EVERY, Charge, Claim, StoreUnavailable, Taken

PREFIX = "mcpd:limits:"
TIMEOUT = 1.0  # seconds to connect, to answer, or to wait for a free pooled connection
MAX_CONNECTIONS = 50  # per process; a take() holds one for well under a millisecond

# KEYS: the charges' windows, then the claims' keys. ARGV: now, call_id, the number of charges, then
# (amount, cap, expires) per charge, then (cap, expires) per claim. Returns {i} when KEYS[i] is the first
# claim, else the first charge, over its cap (nothing taken: the order DatabaseStore refuses in), or
# {0, value...}: each window's value after the call's amount. Numbers are Lua's doubles, exact below 2^53.
TAKE = """
local now, call_id, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
for j = n + 1, #KEYS do
  -- a lease expiring at `now` is still live, as in the database (DELETE ... WHERE expires < now)
  redis.call('ZREMRANGEBYSCORE', KEYS[j], '-inf', '(' .. now)
  if redis.call('ZCARD', KEYS[j]) >= tonumber(ARGV[2 + 3 * n + 2 * (j - n)]) then return {j} end
end
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[3 * i + 2]) then return {i} end
end
local taken = {0}
for i = 1, n do
  taken[i + 1] = redis.call('INCRBY', KEYS[i], ARGV[3 * i + 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i + 3])
end
for j = n + 1, #KEYS do
  redis.call('ZADD', KEYS[j], ARGV[3 + 3 * n + 2 * (j - n)], call_id)
  -- the key lives as long as its longest lease
  redis.call('EXPIREAT', KEYS[j], redis.call('ZRANGE', KEYS[j], -1, -1, 'WITHSCORES')[2])
end
return taken
"""

# KEYS: windows, ARGV: their deltas. A window that has gone (its time is over, or Redis restarted) stays
# gone, as an UPDATE finds no row: INCRBY would create it again, with no expiry.
ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], ARGV[i]) end
end
return 0
"""


class RedisStore:
    """Counters as Redis keys; take() one script (EVALSHA, loaded again after a restart of Redis)."""

    # Under gevent, its calls stay on the hub: they wait cooperatively, and a pooled connection opened
    # by one thread cannot be used from another ("Cannot switch to a different thread").
    on_the_hub = True

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        # Query arguments of the URL (?socket_timeout=…&max_connections=…) win over these defaults.
        # One immediate retry on a connection error: a pooled connection that a restart of Redis closed
        # is opened again at once. A timeout is not retried: the script may have run (the call would
        # then be counted twice).
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=TIMEOUT, socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 1, (redis.ConnectionError,)))
        self.client = redis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._take = self.client.register_script(TAKE)
        self._adjust = self.client.register_script(ADJUST)
        # call_id -> (the keys it holds a lease in, when its leases lapse): see release().
        self._leases: dict[str, tuple[tuple[str, ...], int]] = {}
        self._lock = threading.Lock()
        self._swept = 0

    def take(self, charges: Sequence[Charge], claims: Sequence[Claim], call_id: str, now: int) -> Taken:
        if not charges and not claims:
            return Taken(None, {})
        items = (*charges, *claims)
        args = [now, call_id, len(charges), *(value for charge in charges
                                              for value in (charge.amount, charge.cap, charge.expires)),
                *(value for claim in claims for value in (claim.cap, claim.expires))]
        try:
            reply = self._take([self.prefix + item.key for item in items], args)
        except Exception as exc:
            raise StoreUnavailable(f"the limit counters in Redis: {type(exc).__name__}: {exc}") from exc
        if reply[0]:
            return Taken(items[reply[0] - 1], {})
        if claims:
            self._hold(call_id, tuple(self.prefix + claim.key for claim in claims),
                       max(claim.expires for claim in claims), now)
        return Taken(None, {charge.key: int(value) for charge, value in zip(charges, reply[1:], strict=True)})

    def adjust(self, deltas: dict[str, int]) -> None:
        """Add each delta to its window (a settled reservation: the real amount less the estimate)."""
        changed = sorted((key, delta) for key, delta in deltas.items() if delta)
        if not changed:
            return
        try:
            self._adjust([self.prefix + key for key, _ in changed], [delta for _, delta in changed])
        except Exception as exc:
            raise StoreUnavailable(f"the limit counters in Redis: {type(exc).__name__}: {exc}") from exc

    def release(self, call_id: str) -> None:
        """Give back the call's concurrency slots. Its keys come from this process's own record of what
        it took: a call is admitted and settled in the same process (admission.Admission), so no key in
        Redis need say which keys a call holds; a process that dies takes its record along, and its
        leases lapse when they expire, as the database's Lease rows do."""
        with self._lock:
            held = self._leases.pop(call_id, None)
        if held is None:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key in held[0]:
                    pipe.zrem(key, call_id)
                pipe.execute()
        except Exception as exc:
            raise StoreUnavailable(f"the limit leases in Redis: {type(exc).__name__}: {exc}") from exc

    def cool(self, key: str, until: int) -> None:
        """A key that expires when the cool-down ends (a later end already set stays: GT)."""
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self.prefix + key, until, nx=True, exat=until)
                pipe.expireat(self.prefix + key, until, gt=True)
                pipe.execute()
        except Exception as exc:
            raise StoreUnavailable(f"the cool-downs in Redis: {type(exc).__name__}: {exc}") from exc

    def cooling(self, keys: Sequence[str], now: int) -> set[str]:
        if not keys:
            return set()
        try:
            values = self.client.mget([self.prefix + key for key in keys])
        except Exception as exc:
            raise StoreUnavailable(f"the cool-downs in Redis: {type(exc).__name__}: {exc}") from exc
        return {key for key, value in zip(keys, values, strict=True) if value is not None}  # it expires when cool

    def _hold(self, call_id: str, keys: tuple[str, ...], expires: int, now: int) -> None:
        """Remember the call's leases until release(); now and then forget those of calls never released
        (their leases have lapsed in Redis already), so that the record cannot grow without end."""
        with self._lock:
            self._leases[call_id] = (keys, expires)
            if now - self._swept >= SWEEP_EVERY:
                self._swept = now
                for lapsed in [call for call, (_, until) in self._leases.items() if until < now]:
                    del self._leases[lapsed]
