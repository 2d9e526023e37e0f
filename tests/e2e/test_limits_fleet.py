"""Limits across a fleet: two gunicorn masters (two workers each) on one PostgreSQL, as two hosts behind
a load balancer would run, with the counters in that database, then in one Redis (REDIS_URL). Calls
alternate between the servers; the caps hold for the fleet, not per process."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import requests

from tests.e2e.conftest import Server, running_server
from tests.fakes.upstream import FakeUpstream, json_reply, openai_stream_frames, sse_reply

pytestmark = pytest.mark.xdist_group("e2e-scale")  # the small PostgreSQL of tests/e2e/test_scale.py

FLEET = {"WEB_CONCURRENCY": "2", "MCPD_DB_POOL_SIZE": "5"}
SET_UP = """
from decimal import Decimal
from django.contrib.auth.models import User
from limits.models import Limit
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
llm = Llm.objects.create(name={user!r}, provider="openai", model="m", base_url={base_url!r},
                         price_input=Decimal({price!r}), price_output=Decimal({price!r}))
user = User.objects.create_user({user!r})
grant_run(user, llm)
Limit.objects.create(user=user, {limit})
print(ApiToken.objects.issue(user)[1])
"""
CALL = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis of the fleet's own (tests/redis.sh), started empty, stopped with the module."""
    env = {**os.environ, "MCPD_TEST_REDIS_PORT": "26390", "MCPD_TEST_REDIS_ROOT": "/tmp/mcpd-fleet-redis"}
    script = Path(__file__).resolve().parents[1] / "redis.sh"
    url = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=True,
                         timeout=300).stdout.strip()
    try:
        yield url
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, check=True, timeout=60)


@pytest.fixture(scope="module", params=["database", "redis"])
def fleet(request, tmp_path_factory, small_postgres) -> Iterator[list[Server]]:
    """Two servers sharing one PostgreSQL database (and, with the param redis, one Redis); each test has
    its own user and Llm."""
    url = small_postgres.rsplit("/", 1)[0]
    with psycopg.connect(url + "/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS mcpd_fleet")
        db.execute("CREATE DATABASE mcpd_fleet")
    env = {**FLEET, "DATABASE_URL": url + "/mcpd_fleet"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    with ExitStack() as stack:
        yield [stack.enter_context(running_server(tmp_path_factory, env=env)) for _ in range(2)]


def set_up(fleet: list[Server], fake: FakeUpstream, user: str, limit: str, price: str = "0") -> str:
    script = SET_UP.format(base_url=f"{fake.url}/v1", user=user, limit=limit, price=price)
    return fleet[0].manage("shell", "-c", script).strip().splitlines()[-1]


def spend(fleet: list[Server], user: str) -> tuple:
    """(calls, successes, total cost) of the user's audit rows, once every worker has written them."""
    with psycopg.connect(fleet[0].env["DATABASE_URL"]) as db:
        return db.execute("SELECT count(*), count(*) FILTER (WHERE a.status = 200), coalesce(sum(a.cost), 0) "
                          "FROM audit_auditevent a JOIN auth_user u ON u.id = a.user_id "
                          "WHERE u.username = %s AND a.kind = 'llm_inference_call'", [user]).fetchone()


def wait_for_rows(fleet: list[Server], user: str, count: int) -> tuple:
    deadline = time.monotonic() + 15
    while (found := spend(fleet, user))[0] < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    return found


def calls(fleet: list[Server], token: str, llm: str, count: int, threads: int = 50) -> list[requests.Response]:
    """`count` calls at once to the Llm, alternating between the servers."""
    auth = {"Authorization": f"Bearer {token}"}

    def one(n: int) -> requests.Response:
        return requests.post(f"{fleet[n % len(fleet)].url}/v1/chat/completions", json={**CALL, "model": llm},
                             headers=auth, timeout=30)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def within_one_minute() -> None:
    """Start at the top of a minute when less than 30 s of this one remain (windows are fixed minutes)."""
    if (left := 60 - time.time() % 60) < 30:
        time.sleep(left + 0.1)


def test_30_requests_per_minute_across_two_servers_let_exactly_30_of_200_through(fleet, fake):
    token = set_up(fleet, fake, "rpm", "requests_per_minute=30")
    within_one_minute()
    answers = calls(fleet, token, "rpm", 200)
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 30, 429: 170}, statuses
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert wait_for_rows(fleet, "rpm", 200)[:2] == (200, 30)  # every call audited, the refusals too
    with psycopg.connect(fleet[0].env["DATABASE_URL"]) as db:  # counted where REDIS_URL says, only there
        rows = db.execute("SELECT count(*) FROM limits_counter").fetchone()[0]
    assert (rows == 0) == ("REDIS_URL" in fleet[0].env), rows


def test_a_budget_of_a_few_cents_stops_within_one_calls_cost(fleet, fake):
    # 15 tokens a call at 666.666667 per million: a cent each; a budget of five cents.
    token = set_up(fleet, fake, "budget", "budget=Decimal('0.05'), period='day'", price="666.666667")
    cost = 15 * 666.666667 / 1e6
    made = 0
    while True:  # waves of 20 simultaneous calls until a whole wave is refused
        answers = calls(fleet, token, "budget", 20, threads=20)
        made += len(answers)
        wait_for_rows(fleet, "budget", made)  # settled: the next wave sees what was spent
        if all(answer.status_code == 429 for answer in answers):
            break
        assert made < 400
    assert {answer.json()["error"]["code"] for answer in answers} == {"budget_exceeded"}
    spent = float(spend(fleet, "budget")[2])
    assert 0.05 <= spent < 0.05 + cost + 1e-9, spent


def test_ten_concurrent_calls_across_two_servers_hold_under_100_simultaneous_streams(fleet, fake):
    token = set_up(fleet, fake, "streams", "concurrent=10")
    fake.reset()
    fake.reply(*[sse_reply(openai_stream_frames([f"w{i} " for i in range(10)]), interval=0.3) for _ in range(10)])
    open_now, most, lock = 0, 0, threading.Lock()

    def stream(n: int) -> int:
        nonlocal open_now, most
        response = requests.post(f"{fleet[n % 2].url}/v1/chat/completions", json={**CALL, "model": "streams", "stream": True},
                                 headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=30)
        if response.status_code != 200:
            return response.status_code
        with lock:
            open_now += 1
            most = max(most, open_now)
        body = response.content
        with lock:
            open_now -= 1
        assert body.endswith(b"data: [DONE]\n\n")
        return 200

    with ThreadPoolExecutor(100) as pool:
        statuses = Counter(pool.map(stream, range(100)))
    assert statuses == {200: 10, 429: 90}, statuses
    assert most <= 10
    assert len([r for r in fake.requests if r.path.endswith("/chat/completions")]) == 10
    # The slots are free again once the streams have ended, on both servers.
    assert Counter(answer.status_code for answer in calls(fleet, token, "streams", 10, threads=10)) == {200: 10}




def test_a_deployment_that_failed_is_skipped_by_every_server_until_its_cool_down_ends(fleet, fake):
    """gpt's first deployment (weight 1000) answers 503 and cools down; within a second every worker of
    both servers has read that and sends its calls to the other deployment only."""
    with FakeUpstream() as failing:
        failing.reply(*[json_reply({"error": {"message": "overloaded"}}, status=503) for _ in range(100)])
        script = SET_UP.format(base_url=f"{failing.url}/v1", user="cooling", limit="requests_per_minute=10**6",
                               price="0") + (f"Deployment.objects.create(llm=llm, base_url={fake.url + '/v1'!r})\n"
                                             "llm.weight = 1000; llm.save()\n")
        script = script.replace("from llms.models import Llm", "from llms.models import Deployment, Llm")
        out = fleet[0].manage("shell", "-c", script).strip().splitlines()
        token = out[-1]
        assert Counter(answer.status_code for answer in calls(fleet, token, "cooling", 4, threads=1)) == {200: 4}
        tried = len(failing.requests)
        assert tried >= 1  # the first call went there, failed, and moved on
        time.sleep(1.2)  # each process reads the marks at most once a second
        answers = calls(fleet, token, "cooling", 40, threads=8)
        assert Counter(answer.status_code for answer in answers) == {200: 40}
        assert len(failing.requests) == tried  # skipped everywhere while cooling down
