"""The side-by-side bench's tables and its summary of the targets (bench/serving.py measures)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from loadgen import Outcome

SIDES = ("stand-in", "mcpd", "LiteLLM")
ROUTES = {"openai": "OpenAI passthrough", "anthropic": "Anthropic translation (OpenAI in, Messages upstream)"}


@dataclass
class Tally:
    """What one side did at one level of one phase, summed over its batches."""

    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0  # seconds inside closed loops (req/s = requests / wall)
    cpu: float = 0.0  # CPU seconds of the side's server tree over its batches
    upstream: int = 0  # connections the stand-in accepted during the side's batches
    peak_rss: int = 0  # bytes, the server tree's peak while streams were held
    start_rss: int = 0  # bytes, the same just before the batch
    rounds: list[list[Outcome]] = field(default_factory=list)  # per batch, for the spread
    restarted: bool = False  # the server stopped answering after the batch and was restarted
    skipped: str = ""  # why this batch was not run

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.error]

    @property
    def errors(self) -> Counter[str]:
        return Counter(o.error for o in self.outcomes if o.error)

    @property
    def rate(self) -> float:
        return len(self.ok) / self.wall if self.wall else 0.0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); nan for no values, inf when it falls on a missing value."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Row:
    label: str
    unit: str  # "ms", "s", "req/s", "MB", "n"
    values: dict[str, float]
    lower_is_better: bool = True


def _fmt(value: float | None, unit: str, cap: float | None = None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return f">{cap:g}" if cap else "inf"
    if unit == "n":
        return f"{value:.0f}"
    if unit in ("req/s", "MB"):
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    return f"{value:.3f}" if value < 10 and unit == "ms" else f"{value:.2f}"


def table(title: str, rows: list[Row], cap: dict[str, float] | None = None) -> None:
    """stand-in / mcpd / LiteLLM, then mcpd minus and over the stand-in, and mcpd vs LiteLLM."""
    if not rows:
        return
    print(f"\n{title}")
    print(f"{'':34}{'stand-in':>10}{'mcpd':>10}{'LiteLLM':>10}{'mcpd added':>12}{'mcpd÷alone':>12}"
          f"{'mcpd vs LiteLLM':>17}")
    for row in rows:
        s, m, w = (row.values.get(side) for side in SIDES)
        added = ratio = versus = "-"
        finite = [v for v in (s, m, w) if v is not None and not math.isnan(v)]
        if row.unit in ("ms", "s") and s is not None and m is not None and all(map(math.isfinite, (s, m))):
            added = f"{m - s:+.3f}" if row.unit == "ms" and abs(m - s) < 10 else f"{m - s:+.2f}"
        if row.unit != "n" and s and m is not None and math.isfinite(m) and math.isfinite(s):
            ratio = f"{m / s:.2f}×"
        limit = (cap or {}).get(row.unit)
        if row.unit != "n" and m and w is not None and len(finite) and math.isfinite(m):
            if math.isinf(w):  # LiteLLM past the deadline: mcpd is better by more than deadline / mcpd
                versus = f">{limit / m:.2f}× better" if limit and row.lower_is_better else "-"
            else:
                better = (w / m) if row.lower_is_better else (m / w)
                versus = f"{better:.2f}× better" if better >= 1 else f"{1 / better:.2f}× worse" if better else "-"
        print(f"{row.label:34}{_fmt(s, row.unit, limit):>10}{_fmt(m, row.unit, limit):>10}"
              f"{_fmt(w, row.unit, limit):>10}{added:>12}{ratio:>12}{versus:>17}")


def _by_side(tallies: dict[str, Tally], fn) -> dict[str, float]:
    return {side: fn(t) for side, t in tallies.items() if not t.skipped}


def plain_rows(levels: dict[int, dict[str, Tally]]) -> list[Row]:
    rows = []
    for c, tallies in levels.items():
        lat = lambda q: lambda t: pct([o.latency for o in t.ok], q) * 1000  # noqa: E731
        rows += [Row(f"c={c:<3} p50 ms", "ms", _by_side(tallies, lat(50))),
                 Row(f"c={c:<3} p99 ms", "ms", _by_side(tallies, lat(99))),
                 Row(f"c={c:<3} req/s", "req/s", _by_side(tallies, lambda t: t.rate), lower_is_better=False),
                 Row(f"c={c:<3} server CPU ms per call", "ms",
                     _by_side(tallies, lambda t: t.cpu / max(1, len(t.outcomes)) * 1000)),
                 Row(f"c={c:<3} errors", "n", _by_side(tallies, lambda t: sum(t.errors.values())))]
    return rows


def stream_rows(levels: dict[int, dict[str, Tally]]) -> list[Row]:
    rows = []
    for c, tallies in levels.items():
        first = lambda q: lambda t: pct([o.ttfc for o in t.outcomes], q) * 1000  # noqa: E731
        lag = lambda q: lambda t: pct([x for o in t.ok for x in o.lags], q) * 1000  # noqa: E731
        rows += [Row(f"c={c:<3} first chunk p50 ms", "ms", _by_side(tallies, first(50))),
                 Row(f"c={c:<3} first chunk p99 ms", "ms", _by_side(tallies, first(99))),
                 Row(f"c={c:<3} chunk lag p50 ms", "ms", _by_side(tallies, lag(50))),
                 Row(f"c={c:<3} chunk lag p99 ms", "ms", _by_side(tallies, lag(99))),
                 Row(f"c={c:<3} server CPU ms per stream", "ms",
                     _by_side(tallies, lambda t: t.cpu / max(1, len(t.outcomes)) * 1000)),
                 Row(f"c={c:<3} errors", "n", _by_side(tallies, lambda t: sum(t.errors.values())))]
    return rows


def held_rows(levels: dict[int, dict[str, Tally]]) -> list[Row]:
    rows = []
    for n, tallies in levels.items():
        first = lambda q: lambda t: pct([o.ttfc for o in t.outcomes], q) * 1000  # noqa: E731
        rows += [Row(f"{n:>5} streams errors", "n", _by_side(tallies, lambda t: sum(t.errors.values()))),
                 Row(f"{n:>5} streams first chunk p50 ms", "ms", _by_side(tallies, first(50))),
                 Row(f"{n:>5} streams first chunk p99 ms", "ms", _by_side(tallies, first(99))),
                 Row(f"{n:>5} streams ended p99 s", "s",
                     _by_side(tallies, lambda t: pct([o.latency if not o.error else math.inf
                                                      for o in t.outcomes], 99))),
                 Row(f"{n:>5} streams server RSS peak MB", "MB", _by_side(tallies, lambda t: t.peak_rss / 2**20)),
                 Row(f"{n:>5} streams  (RSS before, MB)", "MB", _by_side(tallies, lambda t: t.start_rss / 2**20)),
                 Row(f"{n:>5} streams server CPU s", "s", _by_side(tallies, lambda t: t.cpu)),
                 Row(f"{n:>5} streams server wedged, restarted", "n", _by_side(tallies, lambda t: int(t.restarted)))]
    return rows


def error_notes(phases: dict[str, dict[int, dict[str, Tally]]]) -> list[str]:
    """What the errors were, and the first error answer's start, per side and level."""
    notes = []
    for phase, levels in phases.items():
        for level, tallies in levels.items():
            for side, t in tallies.items():
                if t.skipped:
                    notes.append(f"  {phase} {level} {side}: {t.skipped}")
                if t.errors:
                    kinds = ", ".join(f"{n} {kind}" for kind, n in t.errors.most_common())
                    detail = next((o.detail for o in t.outcomes if o.detail), b"")
                    notes.append(f"  {phase} {level} {side}: {kinds}" + (f" (e.g. {detail[:160]!r})" if detail else ""))
    return notes


def spread(tallies: dict[str, Tally]) -> str:
    """mcpd's added p50 per alternating batch: min, median, max, to read the machine's noise by."""
    pairs = zip(tallies["stand-in"].rounds, tallies["mcpd"].rounds, strict=False)
    added = [(pct([o.latency for o in m], 50) - pct([o.latency for o in s], 50)) * 1000 for s, m in pairs]
    if not added:
        return "-"
    return (f"min {min(added):+.2f}, median {statistics.median(added):+.2f}, max {max(added):+.2f} ms "
            f"over {len(added)} batches")


def notes(phases: dict[str, dict[int, dict[str, Tally]]]) -> list[str]:
    """The stand-in's own rate (it is not the bottleneck), mcpd's spread per batch, upstream connections."""
    out = []
    plain = phases["plain"]
    if plain:
        alone = max(t["stand-in"].rate for t in plain.values())
        best = {side: max(t[side].rate for t in plain.values()) for side in SIDES[1:] if side in plain[min(plain)]}
        out.append(f"the stand-in alone answered {alone:.0f} req/s through this client (its best level): "
                   + ", ".join(f"{alone / rate:.0f}x {side}'s best ({rate:.0f})" for side, rate in best.items())
                   + "; neither it nor the client is the bottleneck")
    if 1 in plain:
        out.append(f"mcpd's added p50 at c=1 per alternating batch: {spread(plain[1])}")
    closed = [t for phase in ("plain", "stream") for t in phases[phase].values()]
    if closed:
        conns = {side: sum(t[side].upstream for t in closed) for side in SIDES[1:] if side in closed[0]}
        calls = sum(len(t["mcpd"].outcomes) for t in closed)
        out.append(f"new upstream connections in {calls} calls and streams per side (after warm-up): "
                   + ", ".join(f"{side} {n}" for side, n in conns.items()))
    return out


@dataclass
class Target:
    text: str
    met: bool | None  # None: not measured in this run
    figure: str

    def line(self) -> str:
        mark = "-" if self.met is None else "met" if self.met else "NOT met"
        return f"  [{mark:^7}] {self.text}: {self.figure}"


def targets(plain: dict[int, dict[str, Tally]], stream: dict[int, dict[str, Tally]],
            held: dict[int, dict[str, Tally]]) -> list[Target]:
    """The targets mcpd is judged by (one worker each side), from this run's figures."""
    out = []

    def p50_added(levels, c, fn) -> float | None:
        if c not in levels:
            return None
        t = levels[c]
        return (pct(fn(t["mcpd"]), 50) - pct(fn(t["stand-in"]), 50)) * 1000

    latency = lambda t: [o.latency for o in t.ok]  # noqa: E731
    added = p50_added(plain, 1, latency)
    out.append(Target("c=1 non-stream p50 added over the stand-in <= 1.5 ms",
                      None if added is None else added <= 1.5, "-" if added is None else f"{added:+.2f} ms"))
    if 16 in plain and "LiteLLM" in plain[16]:
        m, w = plain[16]["mcpd"].rate, plain[16]["LiteLLM"].rate
        out.append(Target("c=16 non-stream req/s >= 10x LiteLLM's", m >= 10 * w,
                          f"{m / w:.1f}x ({m:.0f} vs {w:.0f} req/s)"))
    else:
        out.append(Target("c=16 non-stream req/s >= 10x LiteLLM's", None, "LiteLLM not run"))
    if 1 in plain and 64 in plain:
        r = {c: plain[c]["mcpd"].rate for c in plain}
        out.append(Target("req/s does not fall from c=1 to c=64", r[64] >= r[1],
                          " / ".join(f"{r[c]:.0f}" for c in sorted(r)) + f" req/s at c={'/'.join(map(str, sorted(r)))}"))
    first = p50_added(stream, 1, lambda t: [o.ttfc for o in t.outcomes])
    out.append(Target("stream first chunk p50 added <= 2 ms (c=1)", None if first is None else first <= 2,
                      "-" if first is None else f"{first:+.2f} ms"))
    lags = {c: p50_added(stream, c, lambda t: [x for o in t.ok for x in o.lags]) for c in stream}
    p99 = {c: (pct([x for o in stream[c]["mcpd"].ok for x in o.lags], 99)
               - pct([x for o in stream[c]["stand-in"].ok for x in o.lags], 99)) * 1000 for c in stream}
    out.append(Target("chunks leave within 1 ms of arriving (added chunk lag p50, each c)",
                      all(v <= 1 for v in lags.values()) if lags else None,
                      ", ".join(f"c={c}: {v:+.2f} ms (p99 {p99[c]:+.2f})" for c, v in lags.items()) or "-"))
    if 1000 in held and held[1000]["mcpd"].skipped:
        out.append(Target("1,000 simultaneous streams", False, held[1000]["mcpd"].skipped))
    elif 1000 in held:
        t = held[1000]["mcpd"]
        errors, p99_first, rss = sum(t.errors.values()), pct([o.ttfc for o in t.outcomes], 99), t.peak_rss / 2**20
        out.append(Target("1,000 simultaneous streams: 0 errors", errors == 0, f"{errors} errors"))
        out.append(Target("1,000 simultaneous streams: first chunk p99 <= 1 s", p99_first <= 1,
                          f"{p99_first:.2f} s" if math.isfinite(p99_first) else "no first chunk for over 1 %"))
        out.append(Target("1,000 simultaneous streams: server RSS <= 400 MB", rss <= 400, f"{rss:.0f} MB peak"))
    if 2000 in held:
        t = held[2000]["mcpd"]
        errors = sum(t.errors.values())
        out.append(Target("2,000 simultaneous streams: 0 errors", not t.skipped and errors == 0,
                          t.skipped or f"{errors} errors"))
    return out
