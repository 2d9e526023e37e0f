"""Seed a fresh, migrated mcpd database with audit rows at scale, and their usage rollups (bench/audit_scale.py).

Realistic in spread, not in content: ~30 Llms on five providers (five unpriced), ~500 users in a few
groups, two tokens each (~1,000), each token calling 1-3 Llms and some far busier than others; calls spread
over the last 90 days (UTC), ~3% errors (upstream 502s, 429s, ...) with no tokens nor cost, ~1% dropped
streams, token counts and costs set; one row in a thousand a change (token issued, Llm updated, ...).
Rows go in in time order (ids rise with created_at, as they do live): PostgreSQL through COPY, SQLite
through executemany batches on the raw connection with synchronous=OFF. The rollups are then built from
the rows in one INSERT ... SELECT ... GROUP BY (their latency buckets too, when the database has them),
and checked against them.
"""

from __future__ import annotations

import io
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import Group, User
from django.db import connection, transaction

from audit import latency
from audit.models import INFERENCE, AuditEvent, UsageDay
from llms.models import Llm
from mcpd.models import ApiToken
from secrets_app.models import Secret

DAYS = 90
LLMS, USERS, TOKENS_PER_USER, GROUPS = 30, 500, 2, 8
PROVIDERS = ["openai", "anthropic", "deepseek", "vllm", "ollama"]
PRICES = {"openai": (2.5, 10), "anthropic": (3, 15), "deepseek": (0.27, 1.1)}  # per million; vllm/ollama unpriced
ERRORS = [(502, "upstream returned 502"), (429, "rate limited"), (400, "invalid request"), (504, "upstream timed out"),
          (401, "authentication failed")]
CHANGES = ["token.issued", "token.revoked", "llm.updated", "permission.granted", "permission.revoked",
           "secret.updated"]
# The columns seeded, in order; every other concrete column (none today) would fail the seed loudly.
COLUMNS = ["created_at", "kind", "user_id", "actor", "token_sha", "llm_name", "provider", "model", "streaming",
           "status", "outcome", "duration_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cache_read_tokens",
           "cache_write_tokens", "cost", "api", "error", "request_id", "client_ip", "object_type", "object_repr",
           "detail"]


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    token_sha: str
    llms: tuple[Llm, ...]
    ip: str


@dataclass(frozen=True)
class Cast:
    admin: User
    callers: list[Caller]
    weights: list[float]  # cumulative: how busy each token is


def make_cast(rng: random.Random) -> Cast:
    """The catalogue, users, groups and tokens the rows refer to (through the ORM: few rows)."""
    admin = User.objects.create_superuser("bench-admin", password=secrets.token_hex(16))
    secret = Secret(name="bench-provider-key", backend="db")
    secret.set_value("sk-bench-FAKE-" + secrets.token_hex(8))
    secret.save()
    llms = []
    for i in range(LLMS):
        provider = PROVIDERS[i % len(PROVIDERS)]
        price_in, price_out = PRICES.get(provider, (None, None))
        llms.append(Llm.objects.create(name=f"{provider}-model-{i:02d}", provider=provider, model=f"model-{i:02d}",
                                       base_url="http://127.0.0.1:9/v1", api_key_secret=secret,
                                       price_input=price_in, price_output=price_out))
    users = User.objects.bulk_create([User(username=f"user{i:03d}", password="!") for i in range(USERS)])
    groups = Group.objects.bulk_create([Group(name=f"team-{i}") for i in range(GROUPS)])
    User.groups.through.objects.bulk_create([User.groups.through(user_id=user.pk, group_id=group.pk)
                                             for user in users for group in rng.sample(groups, rng.choice([0, 1, 1, 2]))])
    tokens = ApiToken.objects.bulk_create([ApiToken(user=user, name=f"key-{n}", sha256=secrets.token_hex(32),
                                                    prefix="mcpd_" + secrets.token_hex(3))
                                           for user in users for n in range(TOKENS_PER_USER)])
    callers = [Caller(token.user.pk, token.user.username, token.sha256,
                      tuple(rng.sample(llms, rng.choice([1, 1, 2, 2, 3]))),
                      f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}") for token in tokens]
    busy = [rng.paretovariate(1.2) for _ in callers]
    total, cumulative = 0.0, []
    for weight in busy:
        total += weight
        cumulative.append(total)
    return Cast(admin, callers, cumulative)


def rows(cast: Cast, count: int, rng: random.Random, today: datetime) -> Iterator[tuple]:
    """`count` rows in COLUMNS order, oldest first, over the DAYS days ending today (UTC)."""
    start = today - timedelta(days=DAYS - 1)
    per_day, extra = divmod(count, DAYS)
    for day in range(DAYS):
        n = per_day + (day < extra)
        base = (start + timedelta(days=day)).timestamp()
        moments = sorted(rng.random() * 86_400 for _ in range(n))
        callers = rng.choices(cast.callers, cum_weights=cast.weights, k=n)
        for moment, caller in zip(moments, callers, strict=True):
            created = datetime.fromtimestamp(base + moment, UTC).replace(tzinfo=None)
            if rng.random() < 0.001:
                yield change_row(cast, created, rng)
            else:
                yield call_row(caller, created, rng)


def call_row(caller: Caller, created: datetime, rng: random.Random) -> tuple:
    llm = rng.choice(caller.llms)
    streaming = rng.random() < 0.5
    dice = rng.random()
    error, status, outcome = "", 200, "ok"
    prompt = completion = cached = cost = None
    if dice < 0.03:
        status, error = rng.choice(ERRORS)
        outcome = "error"
    else:
        outcome = "client_disconnected" if streaming and dice > 0.99 else "ok"
        prompt, completion = int(rng.lognormvariate(6.5, 1.0)) + 1, int(rng.lognormvariate(5, 1.0)) + 1
        cached = int(prompt * rng.random()) if llm.provider == "anthropic" and rng.random() < 0.5 else 0
        if llm.price_input is not None:
            cost = f"{(prompt * float(llm.price_input) + completion * float(llm.price_output)) / 1e6:.10f}"
    duration = int(rng.lognormvariate(7, 0.8))
    api = rng.choices(("chat_completions", "messages", "responses"), (7, 2, 1))[0]
    return (created, INFERENCE, caller.user_id, caller.username, caller.token_sha, llm.name, llm.provider, llm.model,
            streaming, status, outcome, duration, duration // 4 if streaming else None, prompt, completion, cached,
            0 if prompt is not None else None, cost, api, error, secrets.token_hex(16), caller.ip, "", "", "{}")


def change_row(cast: Cast, created: datetime, rng: random.Random) -> tuple:
    return (created, rng.choice(CHANGES), cast.admin.pk, cast.admin.username, "", "", "", "", False, None, "", None,
            None, None, None, None, None, None, "", "", "", None, "apitoken", f"key of user{rng.randrange(USERS):03d}",
            "{}")


def insert(values: Iterator[tuple], batch: int = 20_000) -> int:
    """Write the rows the fastest way the database has; the number written."""
    fields = {f.column for f in AuditEvent._meta.concrete_fields if not f.primary_key}
    if fields != set(COLUMNS):
        raise RuntimeError(f"AuditEvent's columns changed: seed {sorted(fields ^ set(COLUMNS))} in bench/audit_seed.py")
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    written = 0
    connection.ensure_connection()
    raw = connection.connection
    if connection.vendor == "postgresql":
        with transaction.atomic(), raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for row in values:
                buffer.write("\t".join(_pg_text(v) for v in row))
                buffer.write("\n")
                written += 1
                if written % batch == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        return written
    raw.execute("PRAGMA synchronous=OFF")  # a throwaway database: nothing to lose on a crash
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(COLUMNS))})"
    with transaction.atomic():
        chunk: list[tuple] = []
        for row in values:
            chunk.append(tuple(str(v) if isinstance(v, datetime) else v for v in row))
            if len(chunk) == batch:
                raw.executemany(sql, chunk)
                written += len(chunk)
                chunk = []
        raw.executemany(sql, chunk)
        written += len(chunk)
    raw.execute("PRAGMA synchronous=NORMAL")
    return written


def _pg_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return f"{value}+00"
    return str(value)  # no tab, newline nor backslash in any seeded value


def build_rollups() -> int:
    """UsageDay rows from the seeded inference rows, as audit/rollups.py would have kept them."""
    quote = connection.ops.quote_name
    day = "date(created_at)" if connection.vendor == "sqlite" else "(created_at AT TIME ZONE 'UTC')::date"
    sums = ("COUNT(*), SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), COALESCE(SUM(prompt_tokens), 0), "
            "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), "
            "COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(cost), 0), SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END)")
    columns = ["day", "llm_name", "user_id", "token_sha", "calls", "errors", "prompt_tokens", "completion_tokens",
               "cache_read_tokens", "cache_write_tokens", "cost", "unpriced_calls"]
    if latency.BUCKET_COLUMNS[0] in table_columns(UsageDay._meta.db_table):  # the buckets, once audit 0007 ran
        sums += ", " + ", ".join(total for measure in latency.MEASURES for total in latency.bucket_sums_sql(measure))
        columns += latency.BUCKET_COLUMNS
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(UsageDay._meta.db_table)} ({', '.join(columns)}) "
                       f"SELECT {day}, llm_name, COALESCE(user_id, 0), token_sha, {sums} "
                       f"FROM {quote(AuditEvent._meta.db_table)} WHERE kind = %s GROUP BY 1, 2, 3, 4", [INFERENCE])
        return cursor.rowcount


def table_columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {column.name for column in connection.introspection.get_table_description(cursor, table)}


def rollups_match() -> bool:
    """Whether the rollups' totals equal the audit rows' (the cost to a millionth: SQLite sums floats)."""
    from django.db.models import Count, Q, Sum

    calls = AuditEvent.objects.filter(kind=INFERENCE)
    audit = calls.aggregate(calls=Count("id"), errors=Count("id", filter=Q(outcome="error")),
                            prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
                            unpriced_calls=Count("id", filter=Q(cost__isnull=True)), cost=Sum("cost"))
    rollup = UsageDay.objects.aggregate(**{name: Sum(name) for name in audit})
    return all(rollup[k] == audit[k] for k in audit if k != "cost") and abs(rollup["cost"] - audit["cost"]) < 1e-6


def buckets_match() -> bool:
    """Whether the rollups' latency buckets count the successful calls the rows hold: every one with a
    duration, every stream with a first token, in the bucket the row's time falls in (sampled: one bucket
    of each measure, the one with the most calls)."""
    from django.db.models import Count, Q, Sum

    calls = AuditEvent.objects.filter(kind=INFERENCE, outcome="ok")
    rollup = UsageDay.objects.aggregate(**{column: Sum(column) for column in latency.BUCKET_COLUMNS})
    durations = [rollup[c] or 0 for c in latency.DURATION_COLUMNS]
    ttfts = [rollup[c] or 0 for c in latency.TTFT_COLUMNS]
    checks = {"timed": Count("id", filter=Q(duration_ms__isnull=False)), "streams": Count("id", filter=Q(ttft_ms__isnull=False))}
    for name, counts, field in (("duration", durations, "duration_ms"), ("ttft", ttfts, "ttft_ms")):
        busiest = max(range(latency.BUCKETS), key=lambda i: counts[i])
        bounds = {} if busiest == 0 else {f"{field}__gt": latency.BOUNDS_MS[busiest - 1]}
        if busiest < len(latency.BOUNDS_MS):
            bounds[f"{field}__lte"] = latency.BOUNDS_MS[busiest]
        checks[name] = Count("id", filter=Q(**bounds, **{f"{field}__isnull": False}))
        checks[name + "_bucket"] = busiest
    audit = calls.aggregate(**{k: v for k, v in checks.items() if not k.endswith("_bucket")})
    return (audit["timed"] == sum(durations) and audit["streams"] == sum(ttfts)
            and audit["duration"] == durations[checks["duration_bucket"]] and audit["ttft"] == ttfts[checks["ttft_bucket"]])


def seed(count: int, seed_value: int = 2026) -> dict[str, float]:
    """Seed the database; what each step took (s) and how many rows it made."""
    rng = random.Random(seed_value)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    cast = make_cast(rng)
    timings["cast_s"] = time.perf_counter() - began
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    timings["rows"] = insert(rows(cast, count, rng, today))
    timings["insert_s"] = time.perf_counter() - began
    began = time.perf_counter()
    timings["rollups"] = build_rollups()
    timings["rollups_s"] = time.perf_counter() - began
    return timings
