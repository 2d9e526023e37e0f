"""What limits cost on the hot path: the same non-streaming call with no limit, one limit, three limits
(and three with a concurrency cap), against one gunicorn worker of mcpd, on SQLite and on PostgreSQL,
with the counters in the database and in Redis (REDIS_URL; tests/redis.sh starts one on loopback).

    make bench-limits                 # or: .venv/bin/python bench/limits.py --help

One stand-in provider (bench/fast_upstream.py); four users of one Llm, each under other limits (caps too
high to refuse anything, so every call is admitted and counted). Batches alternate between the users and
the order flips every round, so a noisy machine's drift hits all alike. Figures: p50 latency at c=1 and
calls per second at c=16, each with its difference to "no limit" measured in the same run.
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, Gunicorn, Mcpd, Upstream, chat_body, db_label
from loadgen import Call, closed_loop

CONFIGS = {
    "no limit": "",
    "one limit (rpm)": "Limit.objects.create(user=user, requests_per_minute=10**9)",
    "three limits (rpm, tpm, budget)": (
        "Limit.objects.create(user=user, requests_per_minute=10**9); "
        "Limit.objects.create(user=user, llm=llm, tokens_per_minute=2*10**9); "
        "group = Group.objects.create(name=name); group.user_set.add(user); "
        "Limit.objects.create(group=group, budget=Decimal(10**6), period='day')"),
    "three limits + concurrent": (
        "Limit.objects.create(user=user, requests_per_minute=10**9); "
        "Limit.objects.create(user=user, llm=llm, tokens_per_minute=2*10**9, concurrent=10**6); "
        "group = Group.objects.create(name=name); group.user_set.add(user); "
        "Limit.objects.create(group=group, budget=Decimal(10**6), period='day')"),
}
SET_UP = """
from decimal import Decimal
from django.contrib.auth.models import Group, User
from limits.models import Limit
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
llm = Llm.objects.get(name={llm!r})
llm.price_input = llm.price_output = Decimal("1"); llm.save()
for n, limits in enumerate({limits!r}):
    name = f"limits-bench-{{n}}"
    user = User.objects.create_user(name)
    grant_run(user, llm)
    exec(limits)
    print("TOKEN", ApiToken.objects.issue(user)[1])
"""


def set_up(mcpd: Mcpd) -> list[str]:
    """A user per configuration, under its limits; their tokens, in CONFIGS order."""
    out = mcpd.manage("shell", "-c", SET_UP.format(llm=mcpd.llm, limits=list(CONFIGS.values())))
    return [line.split()[1] for line in out.splitlines() if line.startswith("TOKEN ")]


def run(database_url: str | None, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    upstream = Upstream(chunks=4)
    mcpd = Mcpd(database_url)
    try:
        mcpd.set_up(upstream.url)
        tokens = set_up(mcpd)
        gunicorn = Gunicorn(mcpd, workers=1, threads=16)
        try:
            calls = {name: Call.post(f"{gunicorn.url}/v1/chat/completions", {"Authorization": f"Bearer {token}"},
                                     chat_body(mcpd.llm, stream=False)) for name, token in zip(CONFIGS, tokens, strict=True)}
            for call in calls.values():  # warm up: connections, memos, the first window rows
                closed_loop(call, 200, 4)
            results: dict[str, dict[str, list[float]]] = {name: {"p50": [], "rps": []} for name in CONFIGS}
            for round_ in range(args.rounds):
                order = list(CONFIGS) if round_ % 2 == 0 else list(reversed(CONFIGS))
                for name in order:
                    wall, outcomes, _ = closed_loop(calls[name], args.requests, 1)
                    _check(name, outcomes)
                    results[name]["p50"].append(statistics.median(o.latency for o in outcomes) * 1000)
                    wall, outcomes, _ = closed_loop(calls[name], args.requests * 4, 16)
                    _check(name, outcomes)
                    results[name]["rps"].append(len(outcomes) / wall)
            return results
        finally:
            gunicorn.stop()
    finally:
        upstream.stop()
        mcpd.remove()


def _check(name: str, outcomes) -> None:
    bad = [o for o in outcomes if o.status != 200 or o.error]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} calls failed, e.g. {bad[0].status} {bad[0].error} {bad[0].detail[:200]!r}")


def report(label: str, results: dict[str, dict[str, list[float]]]) -> None:
    base_p50 = statistics.median(results["no limit"]["p50"])
    base_rps = statistics.median(results["no limit"]["rps"])
    print(f"\n== {label}: non-streaming calls, 1 worker (median of the rounds)")
    print(f"{'':34} {'p50 c=1':>9} {'vs none':>9} {'calls/s c=16':>13} {'vs none':>8}")
    for name, figures in results.items():
        p50, rps = statistics.median(figures["p50"]), statistics.median(figures["rps"])
        print(f"{name:34} {p50:7.2f}ms {p50 - base_p50:+7.2f}ms {rps:13.0f} {rps / base_rps:7.2f}x")


def postgres() -> str:
    """A fresh database on the test PostgreSQL (tests/pg.sh)."""
    url = subprocess.run(["bash", "tests/pg.sh"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    import psycopg

    server = url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS mcpd_bench_limits")
        db.execute("CREATE DATABASE mcpd_bench_limits")
    return server + "/mcpd_bench_limits"


def redis() -> str:
    """An empty Redis (tests/redis.sh, a port of the benchmark's own), stopped when the benchmark ends."""
    env = {**os.environ, "MCPD_TEST_REDIS_PORT": "26399", "MCPD_TEST_REDIS_ROOT": "/tmp/mcpd-bench-redis"}
    url = subprocess.run(["bash", "tests/redis.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    atexit.register(subprocess.run, ["bash", "tests/redis.sh", "stop"], cwd=ROOT, env=env, check=False)
    subprocess.run(["redis-cli", "-u", url, "flushdb"], check=True, capture_output=True)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="calls per batch at c=1 (4x that at c=16)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--counters", choices=["database", "redis", "both"], default="both",
                        help="where the limit counters live")
    args = parser.parse_args()
    started = time.monotonic()
    databases = [db for db in ("sqlite", "postgresql") if args.database in (db, "both")]
    stores = [store for store in ("database", "redis") if args.counters in (store, "both")]
    for database in databases:
        for store in stores:
            url = postgres() if database == "postgresql" else None
            os.environ.pop("REDIS_URL", None)
            if store == "redis":
                os.environ["REDIS_URL"] = redis()
            report(f"{db_label(url)}, counters in {'Redis' if store == 'redis' else 'the database'}", run(url, args))
    print(f"\ncommand: {' '.join(sys.argv)}; run took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
