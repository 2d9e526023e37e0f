"""The Redis counter store (limits/redis_store.py) against a real redis-server: the same answers as the
database's store, then what is Redis's own: an outage mid-run (fail closed, or open), a restart, races,
leases that lapse, keys that expire, timeouts, gevent.

Each test worker starts a redis-server of its own (tests/redis.sh, on port 26380 + the worker's number),
whether or not REDIS_URL is set: these tests stop and restart it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from limits import admission
from limits.models import Limit
from limits.redis_store import PREFIX, RedisStore
from limits.store import SWEEP_EVERY, Charge, Claim, DatabaseStore, StoreUnavailable, Taken
from tests.api.calls import CHAT, error_of
from tests.api.counters import counts_of

ROOT = Path(__file__).resolve().parents[2]
CHOSEN_STORE = admission.counters


class RedisServer:
    """This worker's own redis-server, started and stopped with tests/redis.sh."""

    def __init__(self) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        number = int(worker[2:]) if worker.startswith("gw") else 0
        self.env = {**os.environ, "MCPD_TEST_REDIS_PORT": str(26380 + number),
                    "MCPD_TEST_REDIS_ROOT": f"/tmp/mcpd-test-redis-{worker}"}
        self.url = ""

    def start(self) -> str:
        """Start it unless it runs (then it is left as it is); its URL."""
        self.url = self._run().strip()
        return self.url

    def stop(self) -> None:
        self._run("stop")

    def _run(self, *args: str) -> str:
        return subprocess.run(["bash", "tests/redis.sh", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, check=True, timeout=300).stdout


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_store(redis_server) -> Iterator[RedisStore]:
    """A store on this worker's redis-server (running, empty) under the default prefix."""
    store = RedisStore(redis_server.start())
    store.client.flushdb()
    yield store
    store.client.connection_pool.disconnect()


@pytest.fixture(params=["database", "redis"])
def store(request):
    """Each store in turn: what they answer must not differ."""
    if request.param == "database":
        request.getfixturevalue("db")
        return DatabaseStore()
    return request.getfixturevalue("redis_store")


@pytest.fixture
def now() -> int:
    return int(time.time())


def chat(client):
    return client.post("/v1/chat/completions", {"model": "gpt", **CHAT}, format="json")


# --- the same answers from both stores ---


def test_a_window_admits_while_under_its_cap_and_tells_each_value(store, now):
    charge = Charge("tpm:1:1", 4, 10, now + 120)
    assert [store.take([charge], [], f"call{i}", now) for i in range(4)] == [
        Taken(None, {"tpm:1:1": 4}), Taken(None, {"tpm:1:1": 8}), Taken(None, {"tpm:1:1": 12}), Taken(charge, {})]
    assert counts_of(store).value("tpm:1:1") == 12  # under the cap before the third: admitted, then over


def test_a_refused_call_takes_nothing(store, now):
    full, other = Charge("rpm:1:1", 1, 1, now + 120), Charge("tpm:2:1", 50, 1000, now + 120)
    slot = Claim("concurrent:3", 5, now + 3600)
    assert store.take([full], [], "first", now).refused is None
    assert store.take([other, full], [slot], "second", now) == Taken(full, {})
    counts = counts_of(store)
    assert not counts.value("tpm:2:1") and counts.value("rpm:1:1") == 1 and counts.leases() == 0


def test_a_full_claim_is_named_before_a_full_window(store, now):
    window, slot = Charge("rpm:1:1", 1, 1, now + 120), Claim("concurrent:1", 1, now + 3600)
    assert store.take([window], [slot], "first", now).refused is None
    assert store.take([window], [slot], "second", now).refused == slot


def test_claims_hold_slots_until_released(store, now):
    slot = Claim("concurrent:1", 2, now + 3600)
    assert [store.take([], [slot], call, now).refused for call in ("a", "b", "c")] == [None, None, slot]
    store.release("a")
    store.release("never-admitted")
    assert store.take([], [slot], "c", now).refused is None
    assert counts_of(store).leases() == 2


def test_a_lease_lapses_once_its_time_is_past(store, now):
    assert store.take([], [Claim("concurrent:1", 1, now + 5)], "gone-quiet", now).refused is None
    later = Claim("concurrent:1", 1, now + 3600)
    assert store.take([], [later], "next", now + 5).refused == later  # live until its second ends
    assert store.take([], [later], "next", now + 6).refused is None


def test_adjust_settles_a_window_and_leaves_a_gone_one_gone(store, now):
    store.take([Charge("tpm:1:1", 40, 100, now + 120)], [], "call", now)
    store.adjust({"tpm:1:1": -25, "tpm:1:0": 7, "rpm:1:1": 0})
    counts = counts_of(store)
    assert (counts.value("tpm:1:1"), counts.value("tpm:1:0"), counts.value("rpm:1:1")) == (15, None, None)


# --- Redis's own ---


def test_keys_are_prefixed_and_expire_with_their_window_or_longest_lease(redis_store, now):
    redis_store.take([Charge("rpm:1:1", 1, 5, now + 120)], [Claim("concurrent:2", 5, now + 3600)], "long", now)
    redis_store.take([], [Claim("concurrent:2", 5, now + 600)], "short", now)
    client = redis_store.client
    assert sorted(client.keys("*")) == [f"{PREFIX}concurrent:2".encode(), f"{PREFIX}rpm:1:1".encode()]
    assert 110 <= client.ttl(f"{PREFIX}rpm:1:1") <= 120
    assert 3590 <= client.ttl(f"{PREFIX}concurrent:2") <= 3600


def test_a_window_is_gone_once_it_expires(redis_store, now):
    redis_store.take([Charge("rpm:1:1", 1, 5, now + 1)], [Claim("concurrent:1", 1, now + 1)], "call", now)
    assert redis_store.client.exists(f"{PREFIX}rpm:1:1", f"{PREFIX}concurrent:1") == 2
    deadline = time.monotonic() + 5
    while redis_store.client.exists(f"{PREFIX}rpm:1:1", f"{PREFIX}concurrent:1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_store.client.dbsize() == 0


@pytest.mark.parametrize("kind", ["charge", "claim"])
def test_exactly_cap_of_many_racing_threads_are_admitted(redis_store, now, kind):
    charges = [Charge("rpm:1:1", 1, 7, now + 120)] if kind == "charge" else []
    claims = [Claim("concurrent:1", 7, now + 3600)] if kind == "claim" else []
    start, answers = threading.Barrier(40), []

    def race(call_id: str) -> None:
        start.wait()
        answers.append(redis_store.take(charges, claims, call_id, now))

    threads = [threading.Thread(target=race, args=(f"call{i}",)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken.refused is None for taken in answers) == 7 and len(answers) == 40
    counts = counts_of(redis_store)
    assert (counts.value("rpm:1:1"), counts.leases()) == ((7, 0) if kind == "charge" else (None, 7))


def test_a_restart_forgets_the_counts_and_the_script_then_counts_again(redis_store, redis_server, now):
    window = Charge("rpm:1:1", 1, 2, now + 120)
    assert [redis_store.take([window], [], "a", now).refused for _ in range(3)] == [None, None, window]
    redis_server.stop()
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        redis_store.take([window], [], "b", now)
    redis_server.start()  # empty: no counts, no script (EVALSHA answers NOSCRIPT: it is loaded again)
    assert redis_store.take([window], [], "c", now) == Taken(None, {"rpm:1:1": 1})


def test_a_redis_that_does_not_answer_is_unavailable_within_its_timeout(now):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects (the backlog), never answers
        store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            store.take([Charge("rpm:1:1", 1, 5, now + 120)], [], "call", now)
        assert time.monotonic() - began < 2.5


def test_an_unreachable_redis_is_unavailable_and_its_password_is_not_told(now):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    store = RedisStore(f"redis://:s3cret-pass@127.0.0.1:{port}/0")  # nothing listens there now
    for call in (lambda: store.take([Charge("rpm:1:1", 1, 5, now + 120)], [], "call", now),
                 lambda: store.adjust({"tpm:1:1": 5})):
        with pytest.raises(StoreUnavailable) as refused:
            call()
        assert "s3cret" not in str(refused.value)


def test_a_script_error_is_unavailable(redis_store, now):
    redis_store.client.rpush(f"{PREFIX}rpm:1:1", "not a counter")
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        redis_store.take([Charge("rpm:1:1", 1, 5, now + 120)], [], "call", now)


def test_the_release_record_of_calls_never_settled_does_not_grow(redis_store, now):
    redis_store.take([], [Claim("concurrent:1", 5, now + 5)], "never-settled", now)
    redis_store.take([], [Claim("concurrent:1", 5, now + SWEEP_EVERY + 3600)], "later", now + SWEEP_EVERY)
    assert set(redis_store._leases) == {"later"}


def test_redis_url_makes_redis_the_counter_store(settings, redis_server):
    counters = CHOSEN_STORE  # admission.counters itself: tests/api/conftest.py may stand a store in for it
    settings.REDIS_URL = redis_server.start()
    counters.cache_clear()
    try:
        assert isinstance(counters(), RedisStore)
    finally:
        counters.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_redis_stopped_mid_run_refuses_calls_under_a_limit(alice, client_for, upstream_llm, fake_upstream,
                                                           redis_store, redis_server, monkeypatch):
    monkeypatch.setattr(admission, "counters", lambda: redis_store)
    Limit.objects.create(user=alice, requests_per_minute=100)
    client = client_for(alice)
    assert chat(client).status_code == 200
    redis_server.stop()
    refused = chat(client)
    assert refused.status_code == 503 and refused["Retry-After"] == "1"
    assert error_of(refused)["code"] == "limits_unavailable"
    assert len(fake_upstream.requests) == 1  # the provider never saw the refused call
    redis_server.start()
    assert chat(client).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_redis_stopped_mid_run_lets_calls_through_when_failing_open(alice, client_for, upstream_llm, redis_store,
                                                                    redis_server, monkeypatch, settings, caplog):
    settings.LIMITS_FAIL_OPEN = True
    monkeypatch.setattr(admission, "counters", lambda: redis_store)
    Limit.objects.create(user=alice, requests_per_minute=1, concurrent=1)
    client = client_for(alice)
    assert chat(client).status_code == 200
    assert chat(client).status_code == 429
    redis_server.stop()
    assert chat(client).status_code == 200
    assert "limits not enforced" in caplog.text and "ConnectionError" in caplog.text


GEVENT = """
from gevent import monkey; monkey.patch_all()
import json, time, gevent, django
django.setup()
from limits import admission
from limits.store import Charge, Claim
store, now = admission.counters(), int(time.time())
def call(call_id):
    taken = store.take([Charge("tpm:1:1", 100, 10**6, now + 120)], [Claim("concurrent:1", 1, now + 3600)], call_id, now)
    store.client.execute_command("CLIENT", "PAUSE", "50", "ALL")  # settle()'s answers keep it waiting
    admission.Admission(call_id, {"tpm:1:1": ("tokens", 100)}, True).settle({"prompt_tokens": 10, "completion_tokens": 5})
    return taken.refused
refused = [gevent.spawn(call, f"call{i}").get() for i in range(3)]  # one by one: each finds the slot free
print(json.dumps({"refused": refused, "leases": store.client.zcard(store.prefix + "concurrent:1"),
                  "tokens": int(store.client.get(store.prefix + "tpm:1:1"))}))
"""


def test_a_call_settles_on_the_gevent_hub(redis_store, redis_server, tmp_path):
    """Under gunicorn's gevent worker: settle() in the hub's thread pool would use a pooled connection
    from another thread (greenlet.error); on the hub, the tokens settle and the slot is given back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPD_", "DATABASE_URL", "REDIS_URL"))}
    done = subprocess.run([sys.executable, "-c", GEVENT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**env, "DJANGO_SETTINGS_MODULE": "mcpd.settings", "REDIS_URL": redis_server.url,
                               "MCPD_DATA_DIR": str(tmp_path / "var")})
    assert done.returncode == 0, done.stderr
    assert "could not settle" not in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"refused": [None] * 3, "leases": 0, "tokens": 45}
