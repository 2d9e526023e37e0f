"""What mcpd adds per request, against calling the provider directly, measured in one run.

    make bench                        # or: .venv/bin/python bench/proxy_overhead.py --help

A fast stand-in provider (bench/fast_upstream.py) and mcpd under gunicorn (as `make run` starts it) run on
127.0.0.1; the two sides are measured in alternating batches (the order flips every round) so a noisy,
shared machine's drift hits both alike. Then the SQL queries of one inference call are listed, in-process.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import requests
from harness import Gunicorn, Mcpd, Upstream, chat_body, db_label

TIMEOUT = 10  # seconds, per request: the bench never waits forever
QUERY_RUNS = 21  # in-process calls whose queries are listed (median time per query)


@dataclass
class Side:
    """One way of calling the provider: straight to the stand-in, or through mcpd."""

    name: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream_body: bytes
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, session: requests.Session | None = None) -> float:
        """One non-streaming call; its latency in seconds."""
        t0 = perf_counter()
        r = (session or self.session).post(self.url, data=self.body, headers=self.headers, timeout=TIMEOUT)
        r.content  # noqa: B018 - read the whole answer
        elapsed = perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"{self.name}: HTTP {r.status_code}: {r.text[:300]}")
        return elapsed

    def stream(self) -> tuple[float, float, int]:
        """One streamed call: (time to the first event, time to the end, events received)."""
        t0 = perf_counter()
        r = self.session.post(self.url, data=self.stream_body, headers=self.headers, timeout=TIMEOUT, stream=True)
        if r.status_code != 200:
            raise RuntimeError(f"{self.name}: HTTP {r.status_code}: {r.text[:300]}")
        first, events, buf, done = 0.0, 0, b"", False
        while not done:
            data = r.raw.read1(65536)  # whatever has arrived: the first event is timed when it lands
            if not data:
                break
            buf += data
            while b"\n\n" in buf:
                event, _, buf = buf.partition(b"\n\n")
                if not first:
                    first = perf_counter() - t0
                events += 1
                done = event == b"data: [DONE]"
        r.raw.read()  # the terminating chunk, so the connection goes back to the pool
        total = perf_counter() - t0
        r.raw.release_conn()
        if not done:
            raise RuntimeError(f"{self.name}: the stream ended without [DONE]")
        return first, total, events


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] * 1000


def rounds_of(total: int, batch: int) -> list[int]:
    return [min(batch, total - done) for done in range(0, total, batch)]


def interleaved(sides: tuple[Side, Side], total: int, batch: int, run: Callable[[Side, int], None],
                upstream: Upstream, conns: dict[str, int]) -> None:
    """Run `total` per side in batches, alternating sides and flipping the order every round; count the
    upstream connections each side opens (asked between batches, outside every timing)."""
    for i, n in enumerate(rounds_of(total, batch)):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            before = upstream.stats()["connections"]
            run(side, n)
            conns[side.name] += upstream.stats()["connections"] - before


def load(side: Side, total: int, concurrency: int, sessions: list[requests.Session]) -> tuple[float, list[float]]:
    """`total` calls from `concurrency` threads (each its own keep-alive session): (wall seconds, latencies)."""
    remaining, lock, latencies = [total], threading.Lock(), []

    def worker(session: requests.Session) -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            latencies.append(side.call(session))

    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions[:concurrency]]
    t0 = perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return perf_counter() - t0, latencies


def measure(direct: Side, mcpd: Side, upstream: Upstream, args: argparse.Namespace) -> dict:
    sides = (direct, mcpd)
    results: dict = {s.name: {"seq": [], "conc": [], "conc_wall": 0.0, "conc_n": 0, "ttfc": [], "total": [],
                              "events": set()} for s in sides}
    conns: dict[str, dict[str, int]] = {phase: {s.name: 0 for s in sides} for phase in ("seq", "conc", "stream")}
    results["conns"] = conns
    sessions = {s.name: [requests.Session() for _ in range(args.concurrency)] for s in sides}

    # Warm-up: every gunicorn worker and thread opens its DB and upstream connections; not measured.
    for side in sides:
        for _ in range(20):
            side.call()
        load(side, args.concurrency * 8, args.concurrency, sessions[side.name])
        side.stream()

    def seq(side: Side, n: int) -> None:
        batch = [side.call() for _ in range(n)]
        results[side.name]["seq"].extend(batch)
        results[side.name].setdefault("seq_rounds", []).append(batch)

    interleaved(sides, args.requests, args.batch, seq, upstream, conns["seq"])

    def conc(side: Side, n: int) -> None:
        wall, latencies = load(side, n, args.concurrency, sessions[side.name])
        results[side.name]["conc_wall"] += wall
        results[side.name]["conc_n"] += n
        results[side.name]["conc"].extend(latencies)

    interleaved(sides, args.requests * 2, max(args.concurrency * 10, args.requests // 3), conc, upstream,
                conns["conc"])

    def stream(side: Side, n: int) -> None:
        for _ in range(n):
            first, total, events = side.stream()
            results[side.name]["ttfc"].append(first)
            results[side.name]["total"].append(total)
            results[side.name]["events"].add(events)

    interleaved(sides, args.streams, max(5, args.streams // 5), stream, upstream, conns["stream"])
    return results


def report(results: dict, args: argparse.Namespace, elapsed: float) -> None:
    d, m = results["direct"], results["mcpd"]
    rps_d, rps_m = d["conc_n"] / d["conc_wall"], m["conc_n"] / m["conc_wall"]
    rows = [
        ("non-stream, sequential  p50 ms", pct(d["seq"], 50), pct(m["seq"], 50)),
        ("non-stream, sequential  p95 ms", pct(d["seq"], 95), pct(m["seq"], 95)),
        (f"non-stream, {args.concurrency} threads   p50 ms", pct(d["conc"], 50), pct(m["conc"], 50)),
        (f"non-stream, {args.concurrency} threads   p95 ms", pct(d["conc"], 95), pct(m["conc"], 95)),
        (f"non-stream, {args.concurrency} threads   req/s", rps_d, rps_m),
        (f"stream {args.chunks} chunks, first   p50 ms", pct(d["ttfc"], 50), pct(m["ttfc"], 50)),
        (f"stream {args.chunks} chunks, first   p95 ms", pct(d["ttfc"], 95), pct(m["ttfc"], 95)),
        (f"stream {args.chunks} chunks, total   p50 ms", pct(d["total"], 50), pct(m["total"], 50)),
        (f"stream {args.chunks} chunks, total   p95 ms", pct(d["total"], 95), pct(m["total"], 95)),
    ]
    print(f"\n{'':34}{'direct':>10}{'via mcpd':>10}{'added':>10}{'ratio':>8}")
    for label, a, b in rows:
        added = f"{b - a:+10.2f}" if "ms" in label else f"{b - a:+10.0f}"
        print(f"{label:34}{a:10.2f}{b:10.2f}{added}{b / a:7.2f}x")
    print()
    print(f"added latency, sequential p50:  +{pct(m['seq'], 50) - pct(d['seq'], 50):.2f} ms per call "
          f"({pct(m['seq'], 50) / pct(d['seq'], 50):.1f}x direct)")
    per_round = [pct(b, 50) - pct(a, 50) for a, b in zip(d["seq_rounds"], m["seq_rounds"], strict=True)]
    print(f"  the same per alternating batch of {args.batch}: min {min(per_round):+.2f}, median "
          f"{statistics.median(per_round):+.2f}, max {max(per_round):+.2f} ms over {len(per_round)} rounds")
    print(f"throughput, {args.concurrency} threads:        mcpd/direct = {rps_m / rps_d:.2f} "
          f"({rps_m:.0f} vs {rps_d:.0f} req/s)")
    print(f"stream time to first chunk:     +{pct(m['ttfc'], 50) - pct(d['ttfc'], 50):.2f} ms p50 "
          f"({pct(m['ttfc'], 50) / pct(d['ttfc'], 50):.1f}x)")
    print(f"stream total ({args.chunks} chunks):     +{pct(m['total'], 50) - pct(d['total'], 50):.2f} ms p50 "
          f"({pct(m['total'], 50) / pct(d['total'], 50):.1f}x); per relayed chunk "
          f"+{(pct(m['total'], 50) - pct(m['ttfc'], 50) - pct(d['total'], 50) + pct(d['ttfc'], 50)) / args.chunks:.3f} ms")
    c = results["conns"]
    print(f"new upstream connections (mcpd / direct client): {c['seq']['mcpd']} / {c['seq']['direct']} in "
          f"{args.requests} sequential calls, {c['conc']['mcpd']} / {c['conc']['direct']} in {args.requests * 2} "
          f"concurrent calls, {c['stream']['mcpd']} / {c['stream']['direct']} in {args.streams} streams")
    print(f"events per stream received: direct {sorted(d['events'])}, via mcpd {sorted(m['events'])}")
    print(f"\nsettings: gunicorn gthread workers={args.workers} threads={args.threads}, access log /dev/null; "
          f"database {db_label(args.database_url)}; {args.requests} sequential + {args.requests * 2} concurrent "
          f"(concurrency {args.concurrency}) calls and {args.streams} streams of {args.chunks} chunks per side, "
          f"interleaved batches; {os.cpu_count()} cores; run took {elapsed:.0f} s "
          f"({datetime.datetime.now().isoformat(timespec='minutes')})")


def key_check_cost(results: dict, args: argparse.Namespace) -> None:
    """What the exact-key test on relayed bytes (llms/scrub.py Scrubber.chunk) costs per stream chunk."""
    m, d = results["mcpd"], results["direct"]
    relay_us = (pct(m["total"], 50) - pct(m["ttfc"], 50) - pct(d["total"], 50) + pct(d["ttfc"], 50)) / args.chunks * 1000
    print(key_check_line(args.chunks, relay_us))


def key_check_line(chunks: int, relay_us: float) -> str:
    """The key check's cost per chunk of the stand-in's stream, and its share of `relay_us` (what mcpd adds)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fast_upstream import stream_frames

    from llms.scrub import Scrubber

    scrub = Scrubber("sk-proj-" + "k" * 156)  # as long as an OpenAI project key
    frames = stream_frames(chunks, usage=False)[:chunks]
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        for frame in frames:
            scrub.chunk(frame)
    per_chunk_us = (time.perf_counter() - started) / (runs * len(frames)) * 1e6
    return (f"key check on relayed bytes: {per_chunk_us:.3f} us per chunk ({len(frames[0])}-byte frames), "
            f"{per_chunk_us / relay_us * 100 if relay_us > 0 else 0:.1f}% of the {relay_us:.1f} us mcpd adds per chunk")


def shorten(sql: str, width: int = 150) -> str:
    """Column lists collapsed to `…`, quotes dropped, cut to width."""
    sql = re.sub(r"^SELECT (?!1 )(.+?) FROM ", "SELECT … FROM ", sql.replace('"', ""), flags=re.S)
    sql = re.sub(r"'[0-9a-f]{64}'", "'<sha256>'", sql)
    sql = re.sub(r"^INSERT INTO (\S+) \((.+?)\) VALUES \((.+?)\)", r"INSERT INTO \1 (…) VALUES (…)", sql,
                 flags=re.S)
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def query_listing(mcpd: Mcpd) -> None:
    """The SQL of one bearer-token, per-object-grant, non-streaming inference call, in-process."""
    from harness import django_in_process

    django_in_process(mcpd)
    import logging

    from django.db import close_old_connections, connection

    logging.getLogger("mcpd.calls").setLevel(logging.WARNING)  # the calls' lines would bury the listing
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    kwargs = {"content_type": "application/json", "HTTP_AUTHORIZATION": f"Bearer {mcpd.token}"}
    body = chat_body(mcpd.llm, stream=False)
    for _ in range(3):  # warm: first-call caches; the token's last_used_at is fresh from the HTTP phases
        assert client.post("/v1/chat/completions", body, **kwargs).status_code == 200
    timings: list[float] = []

    def timed(execute, sql, params, many, context):  # CaptureQueriesContext keeps whole milliseconds only
        t0 = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append(perf_counter() - t0)

    checks: list[float] = []  # CONN_HEALTH_CHECKS: is_usable() runs its own unlogged query, once per request
    is_usable = connection.is_usable

    def counted_is_usable() -> bool:
        t0 = perf_counter()
        try:
            return is_usable()
        finally:
            checks.append(perf_counter() - t0)

    connection.is_usable = counted_is_usable
    runs: list[tuple[list[dict], list[float], float, list[float]]] = []
    for _ in range(QUERY_RUNS):  # one call's listing, with each query's median time over the runs
        timings, checks = [], []
        close_old_connections()  # what request_started does under gunicorn (the test client skips it)
        t0 = perf_counter()
        with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(timed):
            response = client.post("/v1/chat/completions", body, **kwargs)
        elapsed = perf_counter() - t0
        assert response.status_code == 200, response.content
        runs.append((ctx.captured_queries, timings, elapsed, checks))
    connection.is_usable = is_usable
    queries = runs[-1][0]
    if any(len(r[0]) != len(queries) for r in runs):
        print("  (the number of queries varied between calls: the listing is of the last call)")
    # A statement the driver wrapper did not see (executemany inside the audit write) has no time of its own.
    per_query = [statistics.median(times) if (times := [r[1][i] for r in runs if len(r[1]) > i]) else 0.0
                 for i in range(len(queries))]
    whole = statistics.median(r[2] for r in runs)
    print(f"\nSQL per inference call (bearer token, per-object grant, non-streaming; in-process, "
          f"{connection.vendor}; median of {QUERY_RUNS} calls): {len(queries)} queries, "
          f"{sum(per_query) * 1000:.2f} ms in the database driver of the call's {whole * 1000:.2f} ms")
    for i, (q, t) in enumerate(zip(queries, per_query, strict=True), 1):
        print(f"  {i}. [{t * 1000:5.2f} ms] {shorten(q['sql'])}")
    checks = runs[-1][3]
    if checks:
        check_ms = statistics.median(sum(r[3]) for r in runs) * 1000
        print(f"  +{len(checks)} connection health check (CONN_HEALTH_CHECKS; on {connection.vendor} "
              f"is_usable() {'runs SELECT 1' if connection.vendor != 'sqlite' else 'runs no query'}): "
              f"{check_ms:.2f} ms, not in the list above")
    print("  +1 UPDATE mcpd_apitoken SET last_used_at at most once a minute per token (ApiToken.touch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500,
                        help="non-streaming calls per side, sequential (twice as many under concurrency)")
    parser.add_argument("--streams", type=int, default=200, help="streamed calls per side")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads for the load phase")
    parser.add_argument("--batch", type=int, default=25, help="sequential calls per side per alternating batch")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (gunicorn worker processes)")
    parser.add_argument("--threads", type=int, default=8, help="MCPD_THREADS (threads per worker)")
    parser.add_argument("--database-url", default=None,
                        help="e.g. postgres://user@127.0.0.1:5432/db (default: SQLite in a temp data dir)")
    parser.add_argument("--no-queries", action="store_true", help="skip the in-process SQL listing")
    args = parser.parse_args()
    if min(args.requests, args.streams, args.chunks, args.concurrency, args.batch, args.workers, args.threads) < 1:
        parser.error("every count must be at least 1")
    if args.requests > 20000 or args.streams > 5000:
        parser.error("keep it bounded: --requests <= 20000, --streams <= 5000")

    started = time.monotonic()
    upstream = Upstream(args.chunks)
    mcpd = Mcpd(args.database_url)
    server = None
    try:
        print(f"stand-in provider on {upstream.url}; setting up mcpd in {mcpd.data_dir} "
              f"({db_label(args.database_url)}) …", flush=True)
        mcpd.set_up(upstream.url)
        server = Gunicorn(mcpd, args.workers, args.threads)
        print(f"gunicorn on {server.url} (workers={args.workers}, threads={args.threads}); measuring …", flush=True)
        json_headers = {"Content-Type": "application/json"}
        direct = Side("direct", f"{upstream.url}/chat/completions",
                      {**json_headers, "Authorization": "Bearer sk-bench-direct"},
                      chat_body("bench-model", False), chat_body("bench-model", True))
        via = Side("mcpd", f"{server.url}/v1/chat/completions",
                   {**json_headers, "Authorization": f"Bearer {mcpd.token}"},
                   chat_body(mcpd.llm, False), chat_body(mcpd.llm, True))
        results = measure(direct, via, upstream, args)
        server.stop()
        report(results, args, time.monotonic() - started)
        key_check_cost(results, args)
        if not args.no_queries:
            query_listing(mcpd)
    finally:
        if server is not None:
            server.stop()
        upstream.stop()
        mcpd.remove()


if __name__ == "__main__":
    main()
