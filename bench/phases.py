"""The side-by-side bench's phases: who is called how, in alternating batches (bench/serving.py runs them).

Every side is called by the same client (bench/loadgen.py). Closed loops (non-streaming calls, paced streams)
alternate between the sides batch by batch, the order flipping every round; simultaneous streams run one
batch per side and level, after the servers have gone idle, with the server tree's peak RSS sampled meanwhile.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harness import Upstream
from loadgen import Call, closed_loop, simultaneous
from proctree import Tree
from report import ROUTES, Tally, pct

Levels = dict[int, dict[str, Tally]]


class Server(Protocol):
    pid: int

    def answers(self, timeout: float) -> bool: ...
    def stop(self) -> None: ...
    def start(self) -> None: ...


@dataclass
class Side:
    """One way to reach the provider: its calls per (route, kind), the server process tree it runs on, and
    the server (None for the stand-in alone) to restart if it stops answering."""

    name: str
    tree: Tree
    calls: dict[tuple[str, str], Call]
    server: Server | None = None

    def recover(self, upstream: Upstream, patience: float = 60.0) -> bool:
        """After a batch: True if the server had stopped answering and was restarted. A server still working
        through abandoned requests (the stand-in sees requests or streams come and go) is given `patience`
        seconds; one that answers nothing and makes no such progress for 15 s is wedged (LiteLLM, busy on its
        own for 5-9 s after 1,000 abandoned streams, answers within that; gthread's wedge never does)."""
        if self.server is None:
            return False
        started, last, still_since = time.monotonic(), None, time.monotonic()
        while time.monotonic() - started < patience:
            if self.server.answers(2):
                return False
            stats = upstream.stats()
            now = (stats["requests"], stats["streaming"])
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= 15:
                break
        print(f"  {self.name} answers no health check and makes no progress: restarting it", flush=True)
        self.server.stop()
        self.server.start()
        self.tree = Tree(self.server.pid)
        return True


def prompt(pace_ms: int) -> str:
    # The stand-in paces a stream when the body asks (fast_upstream.py); proxies pass the prompt on as is.
    return "Say hello." + (f" [bench pace_ms={pace_ms}]" if pace_ms else "")


def openai_body(model: str, stream: bool, pace_ms: int = 0) -> bytes:
    body: dict = {"model": model, "messages": [{"role": "user", "content": prompt(pace_ms)}], "max_tokens": 32}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def anthropic_body(stream: bool, pace_ms: int = 0) -> bytes:
    body: dict = {"model": "claude-bench", "max_tokens": 32,
                  "messages": [{"role": "user", "content": prompt(pace_ms)}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def paces(args: argparse.Namespace) -> dict[str, tuple[bool, int]]:
    """kind of call -> (streamed, ms between chunks): the held streams last --hold seconds."""
    return {"plain": (False, 0), "stream": (True, args.chunk_ms), "held": (True, round(args.hold * 1000 / args.chunks))}


def proxy_calls(base: str, token: str, models: dict[str, str], args: argparse.Namespace) -> dict[tuple[str, str], Call]:
    """(route, kind) -> the OpenAI chat.completions call to a proxy (mcpd or LiteLLM) for that route's model."""
    return {(route, kind): Call.post(f"{base}/v1/chat/completions", {"Authorization": f"Bearer {token}"},
                                     openai_body(models[route], stream, pace))
            for route in args.routes for kind, (stream, pace) in paces(args).items()}


def direct_calls(upstream_url: str, args: argparse.Namespace) -> dict[tuple[str, str], Call]:
    """(route, kind) -> the same call straight to the stand-in, in the provider's own wire format."""
    out = {}
    for kind, (stream, pace) in paces(args).items():
        out["openai", kind] = Call.post(f"{upstream_url}/chat/completions", {"Authorization": "Bearer sk-direct"},
                                        openai_body("bench-model", stream, pace))
        out["anthropic", kind] = Call.post(f"{upstream_url}/messages",
                                           {"x-api-key": "sk-ant-direct", "anthropic-version": "2023-06-01"},
                                           anthropic_body(stream, pace))
    return out


def evenly(total: int, size: int) -> list[int]:
    """total split into batches of about `size`, as even as they come."""
    batches = max(1, math.ceil(total / size))
    return [total // batches + (1 if i < total % batches else 0) for i in range(batches)]


def alternating(sides: list[Side], i: int) -> list[Side]:
    return sides if i % 2 == 0 else sides[::-1]


def closed_phase(sides: list[Side], upstream: Upstream, route: str, kind: str, levels: dict[int, int],
                 batch: Callable[[int, int], int]) -> Levels:
    """For each concurrency c: `levels[c]` calls per side in alternating batches of about batch(c, total)."""
    results: Levels = {}
    for c, total in levels.items():
        tallies = results[c] = {side.name: Tally() for side in sides}
        for i, n in enumerate(evenly(total, batch(c, total))):
            for side in alternating(sides, i):
                t, before = tallies[side.name], upstream.stats()["connections"]
                wall, outcomes, cpu = closed_loop(side.calls[route, kind], n, c, meter=side.tree.cpu)
                t.upstream += upstream.stats()["connections"] - before
                t.wall, t.cpu = t.wall + wall, t.cpu + cpu
                t.outcomes += outcomes
                t.rounds.append(outcomes)
    return results


def settle(upstream: Upstream, trees: list[Tree], limit: float = 60.0) -> None:
    """Wait until no stream is open at the stand-in and the servers are idle (what a batch that ran into its
    deadline leaves behind: a queued server still works through the abandoned requests)."""
    started, calm, last = time.monotonic(), 0, sum(t.cpu() for t in trees)
    while time.monotonic() - started < limit:
        time.sleep(0.25)
        now = sum(t.cpu() for t in trees)
        calm = calm + 1 if upstream.stats()["streaming"] == 0 and now - last < 0.03 else 0
        last = now
        if calm >= 2:
            if time.monotonic() - started > 2:
                print(f"  (waited {time.monotonic() - started:.0f} s for the servers to go idle)", flush=True)
            return
    print(f"  (still busy after {limit:.0f} s: measuring on)", flush=True)


def held_phase(sides: list[Side], upstream: Upstream, args: argparse.Namespace) -> dict[str, Levels]:
    """n simultaneous streams per side and route, one batch each, smallest n first for every route (a server
    rarely gives memory back: a larger n first would raise the smaller one's RSS), the order of the sides
    flipping every batch. A side none of whose streams ended in time at one n is not run at larger ones."""
    results: dict[str, Levels] = {route: {} for route in args.held_routes}
    failed: dict[tuple[str, str], int] = {}
    i = 0
    for n in sorted(args.held):
        for route in args.held_routes:
            results[route][n] = {}
            for side in alternating(sides, i):
                if (side.name, route) in failed:
                    results[route][n][side.name] = Tally(
                        skipped=f"not run: no stream ended in time at {failed[side.name, route]}")
                    continue
                results[route][n][side.name] = held_batch(side, upstream, sides, route, n, args)
                if not results[route][n][side.name].ok:
                    failed[side.name, route] = n
            i += 1
    return results


def held_batch(side: Side, upstream: Upstream, sides: list[Side], route: str, n: int,
               args: argparse.Namespace) -> Tally:
    settle(upstream, [upstream_tree(upstream)] + [s.tree for s in sides])
    tree = side.tree.refresh()
    tree.peak = start_rss = tree.rss()
    cpu, started = tree.cpu(), time.monotonic()
    outcomes = simultaneous(side.calls[route, "held"], n, args.deadline, sample=tree.sample)
    t = Tally(outcomes=outcomes, cpu=tree.cpu() - cpu, peak_rss=tree.peak, start_rss=start_rss)
    print(f"  {route} {n} streams, {side.name}: {sum(t.errors.values())} errors, first chunk p99 "
          f"{pct([o.ttfc for o in outcomes], 99):.2f} s, {tree.peak / 2**20:.0f} MB, "
          f"{time.monotonic() - started:.1f} s", flush=True)
    t.restarted = side.recover(upstream)
    return t


_upstream_trees: dict[int, Tree] = {}


def upstream_tree(upstream: Upstream) -> Tree:
    return _upstream_trees.setdefault(upstream.pid, Tree(upstream.pid))


def warm_up(sides: list[Side], args: argparse.Namespace) -> None:
    """Every server's threads, pools and lazy imports warmed; not measured."""
    for side in sides:
        for route in args.routes:
            closed_loop(side.calls[route, "plain"], 2 * max(args.concurrency), max(args.concurrency))
            closed_loop(side.calls[route, "stream"], 2 * max(args.stream_concurrency), max(args.stream_concurrency))


def measure(sides: list[Side], upstream: Upstream, args: argparse.Namespace) -> dict[str, dict[str, Levels]]:
    results: dict[str, dict[str, Levels]] = {route: {"plain": {}, "stream": {}, "held": {}} for route in args.routes}
    warm_up(sides, args)
    for route in args.routes:
        started = time.monotonic()
        if "plain" in args.phases:
            plain = {c: args.requests for c in args.concurrency}
            results[route]["plain"] = closed_phase(sides, upstream, route, "plain", plain,
                                                   lambda c, total: 50 if c == 1 else max(4 * c, total // 4))
        if "stream" in args.phases:
            stream = {c: args.streams * (1 if c == 1 else 4) for c in args.stream_concurrency}
            results[route]["stream"] = closed_phase(sides, upstream, route, "stream", stream,
                                                    lambda c, total: max(10, 2 * c, total // 4))
        print(f"{ROUTES[route]}: non-streaming and streams, {time.monotonic() - started:.0f} s", flush=True)
    if "held" in args.phases:
        print(f"simultaneous {args.hold:g}-s streams …", flush=True)
        for route, levels in held_phase(sides, upstream, args).items():
            results[route]["held"] = levels
    return results
