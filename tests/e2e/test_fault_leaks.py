"""A thousand faulty calls through one gunicorn gevent worker, 16 at a time: every fault of
tests/e2e/faulty.py on every route, streamed and not. Each gets what the contract says and one audit row,
and afterwards the worker holds what it held before: the same open files, no socket to the provider but
the pool's kept-alive ones, the same greenlets and threads (tests/e2e/probe.gunicorn.conf.py counts them).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Server, running_server
from tests.e2e.faulty import FAULTS, ROUTES, SERVER_ENV, Call, call, check, set_up
from tests.e2e.test_faults import BAD_SIGNS, worker_pids
from tests.fakes.upstream import FakeUpstream, connection_refused_url

pytestmark = [pytest.mark.xdist_group("e2e-fault-leaks"), pytest.mark.solo]  # tests/run.sh: run alone

REQUESTS = 1000
AT_ONCE = 16
PROBE_CONF = Path(__file__).with_name("probe.gunicorn.conf.py")
# A smaller cap than the matrix's: an oversized body costs the fake and the worker that much, 100 times.
# gevent's pool of native threads lets an idle one go after 0.2 s (5 s by default): at rest, the worker
# has none, and what it holds can be compared exactly.
ENV = {**SERVER_ENV, "MCPD_UPSTREAM_MAX_BODY_BYTES": str(256 * 1024), "GEVENT_THREADPOOL_IDLE_TASK_TIMEOUT": "0.2"}
PLAN = [(route, fault, stream) for route in ROUTES for fault in FAULTS for stream in (False, True)]
TCP_STATES = {"01": "ESTABLISHED", "08": "CLOSE_WAIT", "06": "TIME_WAIT", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "09": "LAST_ACK", "0B": "CLOSING", "07": "CLOSE", "02": "SYN_SENT"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.hang_seconds = 120  # a connection mcpd forgot would keep its reply going long past the test
        yield fake


@dataclass
class Held:
    """What the worker holds: open files, its sockets to the provider by TCP state, greenlets, threads."""

    files: int
    upstream: dict[str, int]
    greenlets: int
    threads: list[str]
    native_threads: int
    kinds: dict[str, int]
    file_kinds: dict[str, int]

    @property
    def database_files(self) -> int:
        """SQLite's files (a connection opens the database, its -wal and -shm)."""
        return sum(n for name, n in self.file_kinds.items() if name.startswith("mcpd.sqlite3"))

    @property
    def other_files(self) -> int:
        """Open files but its sockets to the provider (which the pool may keep alive)."""
        return self.files - sum(self.upstream.values())


def held(pid: int, fake: FakeUpstream, probe: Path) -> Held:
    ask, answer = probe / f"ask-{pid}", probe / f"held-{pid}.json"
    answer.unlink(missing_ok=True)
    ask.touch()
    deadline = time.monotonic() + 10
    while not answer.exists():
        assert time.monotonic() < deadline, "the worker's probe did not answer"
        time.sleep(0.02)
    report = json.loads(answer.read_text())
    inodes, file_kinds = set(), collections.Counter()
    fds = os.listdir(f"/proc/{pid}/fd")
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
        file_kinds[target.split(":")[0] if ":" in target else Path(target).name] += 1
    files = len(fds)
    port = f"{int(fake.url.rsplit(':', 1)[1]):04X}"
    upstream: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == f"0100007F:{port}" and fields[9] in inodes:
            state = TCP_STATES.get(fields[3], fields[3])
            upstream[state] = upstream.get(state, 0) + 1
    return Held(files, upstream, report["greenlets"], report["threads"], report["native_threads"], report["kinds"],
                dict(file_kinds))


def run(server: Server, token: str, fake: FakeUpstream, plan) -> list[tuple[object, Call]]:
    local = threading.local()
    sessions: list[requests.Session] = []

    def one(item):
        if not hasattr(local, "session"):
            local.session = requests.Session()
            sessions.append(local.session)
        route, fault, stream = item
        return item, call(server, token, fake, route, fault, stream, session=local.session)

    try:
        with ThreadPoolExecutor(AT_ONCE) as pool:
            return list(pool.map(one, plan))
    finally:
        for session in sessions:
            session.close()


def rows_per_request(server: Server) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{server.data_dir / 'mcpd.sqlite3'}?mode=ro", uri=True, timeout=10)) as db:
        return dict(db.execute("SELECT request_id, count(*) FROM audit_auditevent WHERE kind = 'llm_inference_call' "
                               "GROUP BY request_id").fetchall())


def at_rest(pid: int, fake: FakeUpstream, probe: Path, like: Held | None = None, timeout: float = 15.0) -> Held:
    """What the worker holds once the calls are over and it is at rest (kept-alive client connections
    closed after MCPD_KEEPALIVE, the audit writer done, no native thread left, and so no database
    connection: a request closes its own, and a thread's goes with it): polled until then and, given
    `like`, until it holds what that did, or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        now = held(pid, fake, probe)
        rest = (fake.replying == 0 and now.native_threads == 0 and now.database_files == 0
                and set(now.upstream) <= {"ESTABLISHED"})
        same = like is None or (now.other_files, now.greenlets) == (like.other_files, like.greenlets)
        if rest and same or time.monotonic() > deadline:
            return now
        time.sleep(0.25)


def test_a_thousand_faulty_calls_leave_nothing_behind(tmp_path_factory, fake):
    probe = tmp_path_factory.mktemp("probe")
    with running_server(tmp_path_factory, env={**ENV, "FAULTS_PROBE_DIR": str(probe)},
                        args=["-c", str(PROBE_CONF)]) as server:
        token = set_up(server, fake, connection_refused_url())
        [worker] = worker_pids(server)
        run(server, token, fake, PLAN)  # warm: every route and fault once; pooled connections exist
        before = at_rest(worker, fake, probe)
        started = time.monotonic()
        results = run(server, token, fake, list(itertools.islice(itertools.cycle(PLAN), REQUESTS)))
        took = time.monotonic() - started
        after = at_rest(worker, fake, probe, like=before)
        rows = rows_per_request(server)

    wrong = []
    for (route, fault, stream), answer in results:
        try:
            check(route, fault.outcome(stream), stream, answer)
        except AssertionError as exc:
            wrong.append(f"{route.id} {fault.id} {'stream' if stream else 'whole'}: {exc}"[:300])
    assert wrong == [], f"{len(wrong)} of {REQUESTS} calls went wrong, e.g. {wrong[:3]}"
    counts = [rows.get(answer.request_id, 0) for _, answer in results]
    assert counts == [1] * REQUESTS, f"{counts.count(0)} calls without an audit row, {sum(c > 1 for c in counts)} with more"
    print(f"\n{REQUESTS} faulty calls in {took:.1f} s; before {before}; after {after}")
    assert fake.replying == 0, "mcpd left provider connections open mid-reply"
    assert set(after.upstream) <= {"ESTABLISHED"}, after.upstream  # e.g. CLOSE_WAIT: a socket mcpd never closed
    assert sum(after.upstream.values()) <= AT_ONCE, after.upstream  # no more than the pool can have kept
    assert (after.native_threads, after.database_files) == (0, 0), after
    assert after.other_files == before.other_files, (before, after)
    assert (after.greenlets, after.threads) == (before.greenlets, before.threads), (before.kinds, after.kinds)
    assert not BAD_SIGNS.search(server.log()), BAD_SIGNS.search(server.log())
