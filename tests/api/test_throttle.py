"""mcpd.throttle: failure counts per (scope, key, fixed window), shared by every process through the database."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from mcpd import throttle
from mcpd.models import ThrottleCounter

LIMIT = throttle.Limit("test", 3, 60)


@pytest.mark.django_db
def test_hits_count_up_per_scope_and_key(clock):
    assert [throttle.hit(LIMIT, "a").count for _ in range(3)] == [1, 2, 3]
    assert throttle.hit(LIMIT, "b").count == 1
    assert throttle.hit(throttle.Limit("other", 3, 60), "a").count == 1
    assert ThrottleCounter.objects.get(scope="test", key="a").count == 3


@pytest.mark.django_db
def test_a_hit_is_one_statement(clock):
    throttle.hit(LIMIT, "a")  # the window's first row also prunes; later hits are the upsert alone
    with CaptureQueriesContext(connection) as queries:
        assert throttle.hit(LIMIT, "a").count == 2
    assert len(queries) == 1 and "ON CONFLICT" in queries[0]["sql"]


@pytest.mark.django_db
def test_a_tally_is_reached_at_the_limit_and_frees_with_its_window(clock):
    clock.advance(15)
    tallies = [throttle.hit(LIMIT, "a") for _ in range(3)]
    assert [t.reached for t in tallies] == [False, False, True]
    assert tallies[-1].retry_after() == 45
    clock.advance(44.5)
    assert tallies[-1].retry_after() == 1
    clock.advance(0.5)
    assert throttle.hit(LIMIT, "a").count == 1 and not throttle.peek((LIMIT, "a"))[0].reached


@pytest.mark.django_db
def test_a_new_window_deletes_the_rows_of_ended_windows(clock):
    throttle.hit(LIMIT, "a")
    throttle.hit(LIMIT, "b")
    throttle.hit(throttle.Limit("long", 3, 3600), "a")
    clock.advance(60)
    assert throttle.hit(LIMIT, "a").count == 1
    assert sorted(ThrottleCounter.objects.values_list("scope", "key", "count")) == [("long", "a", 1), ("test", "a", 1)]


@pytest.mark.django_db
def test_peek_reads_several_counts_in_one_query(clock):
    other = throttle.Limit("other", 5, 900)
    throttle.hit(LIMIT, "a")
    throttle.hit(other, "b")
    throttle.hit(other, "b")
    with CaptureQueriesContext(connection) as queries:
        tallies = throttle.peek((LIMIT, "a"), (other, "b"), (LIMIT, "nobody"))
    assert len(queries) == 1
    assert [(t.count, t.window_end) for t in tallies] == [(1, clock.time + 60), (2, clock.time + 900), (0, clock.time + 60)]


@pytest.mark.django_db
def test_a_disabled_limit_is_never_reached_and_peeking_it_costs_nothing(clock):
    off = throttle.Limit("off", 0, 60)
    with CaptureQueriesContext(connection) as queries:
        [tally] = throttle.peek((off, "a"))
    assert (tally.count, tally.reached, len(queries)) == (0, False, 0)
    assert not throttle.hit(off, "a").reached


@pytest.mark.django_db
def test_a_long_key_is_stored_as_its_digest(clock):
    key = "x" * 1000
    assert [throttle.hit(LIMIT, key).count for _ in range(2)] == [1, 2]
    assert throttle.peek((LIMIT, key))[0].count == 2
    assert ThrottleCounter.objects.get().key.startswith("sha256:")


@pytest.mark.django_db(transaction=True)
def test_concurrent_hits_from_many_connections_are_all_counted():
    threads, hits = 4, 25
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            for _ in range(hits):
                throttle.hit(LIMIT, "shared")
        except BaseException as exc:  # reported below: a thread's exception would otherwise be lost
            failures.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert sum(ThrottleCounter.objects.filter(key="shared").values_list("count", flat=True)) == threads * hits


@pytest.mark.parametrize("remote, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one host usually holds a whole /64
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("not-an-address", "not-an-address"),
])
def test_an_address_key_is_the_address_or_its_ipv6_network(rf, remote, key):
    assert throttle.address_of(rf.get("/", REMOTE_ADDR=remote)) == key


def test_an_address_falls_back_to_remote_addr_when_client_ip_has_none(rf, monkeypatch):
    monkeypatch.setattr(throttle, "client_ip", lambda request: None)
    assert throttle.address_of(rf.get("/", REMOTE_ADDR="192.0.2.9")) == "192.0.2.9"


def test_behind_a_proxy_the_forwarded_address_is_the_key(rf, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    assert throttle.address_of(rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")) \
        == "198.51.100.4"


def test_the_block_memo_forgets_ended_blocks_and_stays_bounded(monkeypatch):
    at = [100.0]
    monkeypatch.setattr(throttle, "now", lambda: at[0])
    memo = throttle.BlockMemo(max_entries=2)
    memo.remember("a", 150)
    memo.remember("b", 200)
    memo.remember("c", 200)  # full, nothing ended: not kept (the database still refuses c)
    assert [memo.blocked_until(k) for k in "abc"] == [150, 200, None]
    at[0] = 160
    memo.remember("c", 300)  # full: a's ended block makes room
    assert [memo.blocked_until(k) for k in "abc"] == [None, 200, 300]
