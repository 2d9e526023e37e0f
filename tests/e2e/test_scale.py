"""A thousand simultaneous streams through `make run`'s server: none fails, none holds a database
connection while it relays, and every one leaves its audit row, on SQLite and on a PostgreSQL that
allows only 50 connections.

The memos are off (MCPD_AUTH_CACHE_SECONDS=0), so that every call looks its token and Llm up in the
database at the same moment as the others: the hardest case for the connections.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, running_server
from tests.e2e.streams import hold_streams
from tests.fakes.paced import PacedUpstream

pytestmark = [pytest.mark.xdist_group("e2e-scale"), pytest.mark.solo]  # tests/run.sh: run alone

STREAMS = 1000
# 8-second streams: long enough for all of them to be open at once, though on two loaded cores (the load
# generator's too) the thousand requests can take over 5 s to all reach the provider.
PACE = {"events": 5, "interval": 2.0}
SERVER = {"WEB_CONCURRENCY": "2", "MCPD_AUTH_CACHE_SECONDS": "0", "MCPD_ACCESS_LOG": "/dev/null",
          "MCPD_DB_POOL_SIZE": "10"}
BAD_SIGNS = re.compile(r"Traceback|too many clients|remaining connection slots|database is locked|"
                       r"AUDIT ROW LOST|another command is already in progress", re.IGNORECASE)
SET_UP = """
from django.contrib.auth.models import User
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
llm = Llm.objects.create(name="paced", provider="openai", model="m", base_url={base_url!r})
user = User.objects.create_user("agents")
grant_run(user, llm)
print(ApiToken.objects.issue(user)[1])
"""
COUNT_ROWS = ("from audit.models import AuditEvent; "
              "print(AuditEvent.objects.filter(kind='llm_inference_call', outcome='ok').count())")


@pytest.fixture(scope="module")
def paced() -> Iterator[PacedUpstream]:
    with PacedUpstream(**PACE) as upstream:
        yield upstream


def run_streams(server: Server, paced: PacedUpstream) -> None:
    token = server.manage("shell", "-c", SET_UP.format(base_url=f"{paced.url}/v1")).strip().splitlines()[-1]
    before = paced.streams
    results = hold_streams(f"{server.url}/v1/chat/completions", {"Authorization": f"Bearer {token}"},
                           {"model": "paced", "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
                           STREAMS)
    errors = [r.error or r.status for r in results if not r.done or r.status != 200]
    assert errors == [], f"{len(errors)} of {STREAMS} streams failed, e.g. {errors[:5]}"
    # Relayed as the provider paced them, 8 s from first to last, not gathered: how soon the first chunk
    # comes is a figure of the benchmark's (`make bench`), which has the cores to itself.
    spreads = sorted(r.last_chunk - r.first_chunk for r in results)
    assert spreads[0] > PACE["interval"] * (PACE["events"] - 1) / 2, spreads[:10]
    assert paced.streams - before == STREAMS and paced.peak >= STREAMS * 0.9  # really at the same time
    deadline = time.monotonic() + 30
    while (rows := int(server.manage("shell", "-c", COUNT_ROWS).strip().splitlines()[-1])) < STREAMS:
        assert time.monotonic() < deadline, f"{rows} audit rows of {STREAMS}"
        time.sleep(0.5)
    assert rows == STREAMS
    assert not BAD_SIGNS.search(server.log()), BAD_SIGNS.search(server.log())


def test_a_thousand_simultaneous_streams_on_sqlite(tmp_path_factory, paced):
    with running_server(tmp_path_factory, env=SERVER) as server:
        run_streams(server, paced)


class ConnectionCount(threading.Thread):
    """The most connections the PostgreSQL server had at once, sampled every 50 ms."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.most, self.stopping = url, 0, threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            while not self.stopping.wait(0.05):
                (count,) = db.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                                      ).fetchone()
                self.most = max(self.most, count)


def test_a_thousand_simultaneous_streams_on_a_postgresql_allowing_50_connections(tmp_path_factory, paced,
                                                                                  small_postgres):
    with running_server(tmp_path_factory, env={**SERVER, "DATABASE_URL": small_postgres}) as server:
        sampler = ConnectionCount(small_postgres)
        sampler.start()
        try:
            run_streams(server, paced)
        finally:
            sampler.stopping.set()
            sampler.join(5)
    assert 0 < sampler.most <= 2 * 10 + 5, sampler.most  # two workers' pools, the sampler, a manage.py
