"""Every provider fault, on every inbound API and route, streamed and not, through `make run`'s server:
the contract's status (or one error event once a stream began), exactly one audit row, and the provider's
connection let go of (tests/e2e/faulty.py has the routes, the faults and what each must give).

One gunicorn gevent worker with short timeouts and a small body cap; one fake provider.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, running_server
from tests.e2e.faulty import (
    FAULTS,
    MAX_BODY,
    ROUTES,
    SERVER_ENV,
    Fault,
    Route,
    call,
    check,
    check_row,
    set_up,
    wait_for_row,
)
from tests.fakes.upstream import FakeUpstream, connection_refused_url
from tests.waiting import wait_for

pytestmark = pytest.mark.xdist_group("e2e-faults")

BAD_SIGNS = re.compile(r"Traceback|AUDIT ROW LOST|did not stop", re.IGNORECASE)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory, fake) -> Iterator[tuple[Server, str]]:
    with running_server(tmp_path_factory, env=SERVER_ENV) as server:
        yield server, set_up(server, fake, connection_refused_url())
    assert not BAD_SIGNS.search(server.log()), server.log()[-5000:]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_a_provider_fault_ends_as_the_contract_says(faulty_server, fake, route: Route, fault: Fault, stream: bool):
    server, token = faulty_server
    fake.reset()
    outcome = fault.outcome(stream)
    answer = call(server, token, fake, route, fault, stream)
    check(route, outcome, stream, answer)
    [row] = wait_for_row(server, answer.request_id)
    check_row(route, outcome, stream, row)
    assert len(fake.requests) == (0 if fault.id == "refused" else 1)  # never retried
    wait_for(lambda: fake.replying == 0, timeout=3)  # mcpd let go of the provider's connection
    assert len(wait_for_row(server, answer.request_id)) == 1  # still one, now that the call is over


def test_the_body_cap_holds_the_workers_memory(faulty_server, fake):
    """A 60 MiB reply costs the worker about the cap (4 MiB, and a few more the allocator keeps), not the
    reply: it is read as it comes, and no further than the cap."""
    server, token = faulty_server
    [worker] = worker_pids(server)
    route = next(r for r in ROUTES if r.id == "chat-to-openai")
    oversized = [f for f in FAULTS if f.id.startswith("oversized")]
    fake.reset()
    for fault in oversized:  # warm: what these calls import is imported, what they allocate allocated once
        assert call(server, token, fake, route, fault, False).status == 502
    before = peak_rss(worker)
    for fault in oversized * 3:
        assert call(server, token, fake, route, fault, False).status == 502
    grown = peak_rss(worker) - before
    print(f"\nthe worker's peak memory grew by {grown / 2**20:.1f} MiB for nine replies of 60 MiB")
    assert grown < 4 * MAX_BODY, f"the worker's peak memory grew by {grown / 2**20:.1f} MiB for 60 MiB replies"


def worker_pids(server: Server) -> list[int]:
    """The pids of gunicorn's workers (the master's children)."""
    assert server.process is not None
    pid = server.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def peak_rss(pid: int) -> int:
    """A process's peak resident memory so far, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
