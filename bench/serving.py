"""mcpd side by side with the provider alone and with the LiteLLM proxy, in one interleaved run on loopback.

    make bench                        # or: .venv/bin/python bench/serving.py --help

The stand-in provider (bench/fast_upstream.py), mcpd exactly as `make run` serves it and the LiteLLM proxy
(bench/litellm_proxy.py: its own virtualenv, one worker, no database, offline) run on 127.0.0.1, with one
worker each. The same client (bench/loadgen.py) calls the stand-in directly, mcpd and LiteLLM, in batches
that alternate between them (the order flips every round) so a noisy machine's drift hits all alike:
non-streaming calls at a few concurrencies, paced streams (first chunk, and how long each chunk takes to get
through), then many simultaneous 2-second streams held at once (errors, first chunk, the server's memory and
CPU); for the OpenAI passthrough and for the Anthropic translation. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness import Gunicorn, Mcpd, Upstream, db_label
from phases import Levels, Side, direct_calls, measure, proxy_calls, upstream_tree
from proctree import Tree
from report import ROUTES, error_notes, held_rows, notes, pct, plain_rows, stream_rows, table, targets

if TYPE_CHECKING:
    from litellm_proxy import LiteLlm


def report(results: dict[str, dict[str, Levels]], args: argparse.Namespace, gunicorn: Gunicorn,
           litellm: LiteLlm | None, elapsed: float) -> None:
    caps = {"ms": args.deadline * 1000, "s": args.deadline}
    for route, by_phase in results.items():
        title = ROUTES[route]
        table(f"== non-streaming, {title} ({args.requests} calls per side at each c)",
              plain_rows(by_phase["plain"]))
        table(f"== streams of {args.chunks} chunks {args.chunk_ms} ms apart, {title} (chunk lag: the stand-in "
              f"wrote it -> the client has it)", stream_rows(by_phase["stream"]))
        table(f"== simultaneous {args.hold:g}-s streams ({args.chunks} chunks each), {title}; a stream not "
              f"ended {args.deadline:g} s after it began is an error (timeout)", held_rows(by_phase["held"]), caps)
        if errors := error_notes(by_phase):
            print("errors, and batches not run:\n" + "\n".join(errors))
    print()
    for route, by_phase in results.items():
        for line in notes(by_phase):
            print(f"{route}: {line}")
    if "openai" in results and 1 in results["openai"]["stream"]:
        from proxy_overhead import key_check_line

        t = results["openai"]["stream"][1]
        lag = lambda side: pct([x for o in t[side].ok for x in o.lags], 50)  # noqa: E731
        print(key_check_line(args.chunks, (lag("mcpd") - lag("stand-in")) * 1e6))
    for route, by_phase in results.items():
        print(f"\ntargets for mcpd, {ROUTES[route]}:")
        for target in targets(by_phase["plain"], by_phase["stream"], by_phase["held"]):
            print(target.line())
    worker = re.search(r"Using worker: (\S+)", gunicorn.log.read_text())
    print(f"\nsettings: mcpd `{' '.join(shlex.quote(a) for a in gunicorn.command[1:])}` (worker "
          f"{worker.group(1) if worker else '?'}, WEB_CONCURRENCY={args.workers}, MCPD_THREADS={args.threads}, "
          f"MCPD_WORKER_CONNECTIONS={args.worker_connections}, access log /dev/null), database "
          f"{db_label(args.database_url)}; LiteLLM "
          + (f"{litellm_version()} `litellm --num_workers 1` (started in {litellm.started_in:.1f} s)" if litellm
             else "not run (--no-litellm)")
          + f"; {os.cpu_count()} cores; run took {elapsed:.0f} s ({datetime.datetime.now().isoformat(timespec='minutes')})")
    print(f"command: {' '.join(shlex.quote(a) for a in sys.argv)}")


def litellm_version() -> str:
    from litellm_proxy import VERSION

    return VERSION


def outbound_lines(log: Path) -> list[str]:
    """Lines of LiteLLM's log that show it tried to reach the network (none expected: it runs offline)."""
    pattern = re.compile(r"Name or service not known|Temporary failure in name resolution|ConnectError|"
                         r"raw\.githubusercontent|Failed to fetch", re.I)
    return [line[:200] for line in log.read_text(errors="replace").splitlines() if pattern.search(line)]


def parse_args() -> argparse.Namespace:
    ints = lambda text: [int(v) for v in text.split(",") if v]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a short run: fewer calls; 100 and 1,000 simultaneous streams, on the first route only")
    parser.add_argument("--no-litellm", action="store_true", help="stand-in and mcpd only")
    parser.add_argument("--litellm-venv", type=Path, default=None,
                        help="where LiteLLM is (or gets) installed (default: ~/.cache/mcpd-bench/litellm-VERSION)")
    parser.add_argument("--routes", default="openai,anthropic", help="openai, anthropic or both (default)")
    parser.add_argument("--phases", default="plain,stream,held",
                        help="any of plain (non-streaming), stream, held (simultaneous streams); default all")
    parser.add_argument("--requests", type=int, default=None, help="non-streaming calls per side at each "
                        "concurrency (default 300, --quick 100)")
    parser.add_argument("--concurrency", type=ints, default=[1, 16, 64], help="non-streaming levels (1,16,64)")
    parser.add_argument("--streams", type=int, default=None, help="streams per side at c=1 (4x at higher c; "
                        "default 30, --quick 15)")
    parser.add_argument("--stream-concurrency", type=ints, default=[1, 32], help="stream levels (1,32)")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream (20)")
    parser.add_argument("--chunk-ms", type=int, default=5, help="ms between chunks in the stream phase (5)")
    parser.add_argument("--held", type=ints, default=None, help="simultaneous streams per batch "
                        "(default 100,1000,2000; --quick 100,1000)")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each simultaneous stream lasts (2)")
    parser.add_argument("--deadline", type=float, default=10.0,
                        help="seconds a simultaneous stream may take before it counts as an error (10)")
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY (1: one worker each side)")
    parser.add_argument("--threads", type=int, default=16, help="MCPD_THREADS (16, gunicorn.conf.py's default)")
    parser.add_argument("--worker-connections", type=int, default=4000, help="MCPD_WORKER_CONNECTIONS (4000)")
    parser.add_argument("--gunicorn-args", default=os.environ.get("MCPD_BENCH_GUNICORN_ARGS", ""),
                        help="extra arguments after `gunicorn -c gunicorn.conf.py`, e.g. '-k gevent "
                        "--worker-connections 4000' (default: none, exactly `make run`'s command)")
    parser.add_argument("--database-url", default=None,
                        help="e.g. postgres://user@127.0.0.1:5432/db (default: SQLite in a temp data dir)")
    parser.add_argument("--no-queries", action="store_true", help="skip the in-process SQL listing")
    args = parser.parse_args()
    args.routes = [r for r in args.routes.split(",") if r]
    if not set(args.routes) <= set(ROUTES) or not args.routes:
        parser.error("--routes: openai, anthropic or both")
    args.phases = [p for p in args.phases.split(",") if p]
    if not set(args.phases) <= {"plain", "stream", "held"} or not args.phases:
        parser.error("--phases: plain, stream, held")
    args.requests = args.requests or (100 if args.quick else 300)
    args.streams = args.streams or (15 if args.quick else 30)
    args.held = args.held or ([100, 1000] if args.quick else [100, 1000, 2000])
    args.held_routes = args.routes[:1] if args.quick else args.routes  # held streams take most of a run
    counts = [args.requests, args.streams, args.chunks, args.workers, args.threads, *args.concurrency,
              *args.stream_concurrency, *args.held]
    if min(counts) < 1 or args.chunk_ms < 0 or args.hold <= 0 or args.deadline <= args.hold:
        parser.error("counts must be at least 1, --deadline longer than --hold")
    if args.requests > 20000 or args.streams > 2000 or max(args.held) > 5000 or max(args.concurrency) > 1000:
        parser.error("keep it bounded: --requests <= 20000, --streams <= 2000, --held <= 5000, concurrency <= 1000")
    return args


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    venv = None
    if not args.no_litellm:  # installing is not part of any figure
        from litellm_proxy import default_venv, install

        venv = install(args.litellm_venv or default_venv())
    upstream = Upstream(args.chunks)
    mcpd = Mcpd(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="mcpd-bench-litellm-"))
    server = litellm = None
    try:
        print(f"stand-in provider on {upstream.url}; setting up mcpd in {mcpd.data_dir} "
              f"({db_label(args.database_url)}) …", flush=True)
        mcpd.set_up(upstream.url, anthropic="anthropic" in args.routes)
        server = Gunicorn(mcpd, args.workers, args.threads, args.worker_connections,
                          tuple(shlex.split(args.gunicorn_args)))
        sides = [Side("stand-in", upstream_tree(upstream), direct_calls(upstream.url, args)),
                 Side("mcpd", Tree(server.pid),
                      proxy_calls(server.url, mcpd.token, {"openai": mcpd.llm, "anthropic": mcpd.anthropic_llm}, args),
                      server)]
        if venv is not None:
            from litellm_proxy import MASTER_KEY, MODELS, LiteLlm

            litellm = LiteLlm(venv, upstream.url.removesuffix("/v1"), work)
            sides.append(Side("LiteLLM", Tree(litellm.pid), proxy_calls(litellm.url, MASTER_KEY, MODELS, args),
                              litellm))
        print(f"mcpd on {server.url}" + (f", LiteLLM on {litellm.url}" if litellm else "") + "; measuring …",
              flush=True)
        results = measure(sides, upstream, args)
        report(results, args, server, litellm, time.monotonic() - started)
        if litellm is not None:
            outbound = outbound_lines(litellm.log)
            print(f"LiteLLM's log ({litellm.log.name}): " + (f"{len(outbound)} lines about network access, e.g. "
                  f"{outbound[0]!r}" if outbound else "no attempt to reach the network"))
        server.stop()
        if not args.no_queries:
            from proxy_overhead import query_listing

            query_listing(mcpd)
    finally:
        for proc in (server, litellm):
            if proc is not None:
                proc.stop()
        upstream.stop()
        mcpd.remove()
        for path in sorted(work.glob("*"), reverse=True):
            path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
