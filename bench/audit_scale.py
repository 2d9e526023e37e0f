"""Millions of audit rows: how long the usage API and the admin pages take on them, SQLite and PostgreSQL.

    make bench-audit                                   # = .venv/bin/python bench/audit_scale.py
    .venv/bin/python bench/audit_scale.py --rows 200000 --databases sqlite     # a quick look

For each database: a fresh one (SQLite: a file in a temp dir; PostgreSQL: a new database on the server of
DATABASE_URL / --database-url, else on a throwaway server started with tests/pg.sh), migrated to just
before the admin's indexes (audit 0005), seeded (bench/audit_seed.py), timed with the admin as it was before
(Django's counting paginator, date_hierarchy, substring search), migrated (the new indexes built on the
seeded rows, timed), migrated again (the rollups' latency buckets, audit 0007, filled from the rows, timed),
timed again with today's admin; the usage API and the usage dashboard once (they read the rollups only).
Each figure is the median of --runs requests through Django's test Client, logged in as a superuser, after
one untimed request; "SQL" is the slowest statement of a request and "full count" says whether one counted
the audit table without a LIMIT. The audit write path (audit.writer.insert_rows, 500 rows) is timed with
and without the latency buckets, in alternating batches. Everything it creates is removed at the end
(--keep to keep it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from harness import PYTHON, ROOT, db_label

BEFORE_RUNS = 3  # the old pages take seconds each at 2M rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="audit rows to seed (default 2,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page (median; default 5)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both (default)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="a PostgreSQL server to create the bench's database on (default: DATABASE_URL, "
                             "else a throwaway server from tests/pg.sh)")
    parser.add_argument("--no-before", action="store_true", help="skip the old admin (and the index build)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (their places are printed)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure here, results to this file
    args = parser.parse_args()
    if args.child:
        return child(args)
    began = time.perf_counter()
    results = {}
    for vendor in args.databases.split(","):
        with database(vendor, args) as env:
            results[vendor] = run_child(env, args)
    report(results, args, time.perf_counter() - began)


@contextmanager
def database(vendor: str, args: argparse.Namespace):
    """The environment of a child process on a fresh database of this vendor."""
    data_dir = Path(tempfile.mkdtemp(prefix="mcpd-audit-bench-"))
    env = {**os.environ, "MCPD_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "mcpd.settings",
           "MCPD_DB_POOL_SIZE": "0", "MCPD_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    server = None
    try:
        if vendor == "postgresql":
            server_url = args.database_url or (server := PgServer()).url
            env["DATABASE_URL"] = create_database(server_url)
        elif vendor != "sqlite":
            raise SystemExit(f"--databases: unknown {vendor!r} (sqlite, postgresql)")
        yield env
    finally:
        if args.keep:
            print(f"kept: MCPD_DATA_DIR={data_dir} DATABASE_URL={env.get('DATABASE_URL', '(sqlite)')}"
                  + (f" (stop: MCPD_TEST_PG_ROOT={server.root} bash tests/pg.sh stop)" if server else ""))
        else:
            if "DATABASE_URL" in env and server is None:
                drop_database(env["DATABASE_URL"])
            if server:
                server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


class PgServer:
    """A PostgreSQL of the bench's own (tests/pg.sh in its own directory and port, so that a test run's
    server is neither reused nor stopped)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="mcpd-audit-bench-pg-"))  # tests/pg.sh makes it anew
        self.env = {**os.environ, "MCPD_TEST_PG_ROOT": str(self.root), "MCPD_TEST_PG_PORT": str(free_low_port())}
        self.url = subprocess.run(["bash", "tests/pg.sh"], cwd=ROOT, env=self.env, check=True, text=True,
                                  stdout=subprocess.PIPE).stdout.strip()

    def stop(self) -> None:
        subprocess.run(["bash", "tests/pg.sh", "stop"], cwd=ROOT, env=self.env, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def free_low_port() -> int:
    """A free port below the kernel's ephemeral range (tests/pg.sh says why)."""
    import socket

    for port in range(25_500, 26_000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 25500-25999")


def create_database(server_url: str) -> str:
    """A new database on the server; its URL."""
    import psycopg

    name = f"mcpd_audit_bench_{os.urandom(3).hex()}"
    maintenance = urlunsplit(urlsplit(server_url)._replace(path="/postgres"))  # the URL's own may not exist
    with psycopg.connect(maintenance, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def run_child(env: dict[str, str], args: argparse.Namespace) -> dict:
    out = Path(env["MCPD_DATA_DIR"]) / "results.json"
    command = [PYTHON, __file__, "--child", str(out), "--rows", str(args.rows), "--runs", str(args.runs)]
    subprocess.run(command + (["--no-before"] if args.no_before else []), cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text())


# --- in the child: Django loaded on the fresh database


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    # Static URLs without collectstatic's manifest (as the tests have them): pages render the same.
    override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()

    import audit_seed

    results: dict = {"database": db_label(os.environ.get("DATABASE_URL")), "steps": {}, "pages": {}}
    steps = results["steps"]
    began = time.perf_counter()
    call_command("migrate", verbosity=0)
    if not args.no_before:
        call_command("migrate", "audit", "0005", verbosity=0)
    steps["migrate_s"] = time.perf_counter() - began
    say(f"{results['database']}: seeding {args.rows:,} audit rows")
    steps.update(audit_seed.seed(args.rows))
    say(f"  inserted in {steps['insert_s']:.0f} s, {steps['rollups']:,} rollups in {steps['rollups_s']:.0f} s")
    analyse(connection)
    began = time.perf_counter()
    steps["rollups_match"] = audit_seed.rollups_match()
    steps["check_s"] = time.perf_counter() - began
    client, pages = admin_client(), page_urls()
    if not args.no_before:
        steps["write_before_ms"] = write_batch_ms(without_buckets=True)  # the table has no buckets yet
        with old_admin():
            for name, url in pages.items():
                results["pages"].setdefault(name, {})["before"] = timed(client, url, min(args.runs, BEFORE_RUNS))
        say("  old admin timed; building the admin's indexes (audit 0006)")
        began = time.perf_counter()
        call_command("migrate", "audit", "0006", verbosity=0)
        steps["index_s"] = time.perf_counter() - began
        say("  filling the rollups' latency buckets from the rows (audit 0007)")
        began = time.perf_counter()
        call_command("migrate", "audit", verbosity=0)
        steps["buckets_s"] = time.perf_counter() - began
        analyse(connection)
    else:
        steps["fill_s"] = refill_buckets()
    steps["buckets_match"] = audit_seed.buckets_match()
    steps["write_after_ms"], steps["write_no_buckets_ms"] = write_batch_ab()
    for name, url in {**pages, **extra_urls(args.rows), **usage_urls(), **dashboard_urls()}.items():
        results["pages"].setdefault(name, {})["after"] = timed(client, url, args.runs)
    steps["table_mb"] = table_mb(connection)
    Path(args.child).write_text(json.dumps(results))


def say(text: str) -> None:
    print(text, flush=True)


def analyse(connection) -> None:
    """PostgreSQL's statistics as autovacuum would have them by now (SQLite gets no ANALYZE: Django runs none)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def admin_client():
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST="localhost")  # no test environment: templates are not instrumented
    client.force_login(User.objects.get(username="bench-admin"))
    return client


def page_urls() -> dict[str, str]:
    from audit.models import AuditEvent

    middle = AuditEvent.objects.filter(pk__gte=AuditEvent.objects.order_by("-pk").values("pk")[:1].get()["pk"] // 2)
    request_id = middle.exclude(request_id="").order_by("pk").values_list("request_id", flat=True)[:1].get()
    return {"audit: first page": "/admin/audit/auditevent/", "audit: page 50": "/admin/audit/auditevent/?p=50",  # 5,000+ rows
            "audit: outcome=error": "/admin/audit/auditevent/?outcome__exact=error",
            "audit: search request_id": f"/admin/audit/auditevent/?q={request_id}",
            "audit: search username": "/admin/audit/auditevent/?q=user042"}


def extra_urls(rows: int) -> dict[str, str]:
    """Pages the old admin did not have, or had under other URLs: timed with today's admin only."""
    from audit.models import UsageDay

    llm, day = UsageDay.objects.values_list("llm_name", "day").order_by("-day", "llm_name")[:1].get()
    deep = {"audit: outcome=error, page 20": "/admin/audit/auditevent/?outcome__exact=error&p=20",
            "usage per day: page 50": "/admin/audit/usageday/?p=50"} if rows >= 100_000 else {}
    return {"usage per day: first page": "/admin/audit/usageday/", **deep,
            "audit: llm filter": f"/admin/audit/auditevent/?llm_name={llm}",
            "audit: all changes": "/admin/audit/auditevent/?kind=changes",
            "audit: status 4xx": "/admin/audit/auditevent/?status_class=4",
            "audit: provider=gemini-cli (none)": "/admin/audit/auditevent/?provider=gemini-cli",
            "audit: last 7 days": "/admin/audit/auditevent/?" + urlencode(  # as the created_at filter links
                {"created_at__gte": f"{day - timedelta(days=6)} 00:00:00+00:00",
                 "created_at__lt": f"{day + timedelta(days=1)} 00:00:00+00:00"}),
            "audit: search, no match": "/admin/audit/auditevent/?q=nothing-matches-this",
            "usage per day: llm + day": f"/admin/audit/usageday/?llm_name={llm}&day__gte={day}"
                                        f"&day__lt={day + timedelta(days=1)}"}


def usage_urls() -> dict[str, str]:
    from django.utils import timezone

    today = timezone.now().date()
    return {f"usage API: {group_by}, {days} days": f"/api/v1/usage/?group_by={group_by}&since="
                                                     f"{today - timedelta(days=days - 1)}&until={today}"
            for days in (30, 90) for group_by in ("llm", "user", "group", "token")}


def dashboard_urls() -> dict[str, str]:
    return {f"usage dashboard: {period}": f"/admin/usage/?period={period}" for period in ("day", "week", "month")}


def refill_buckets() -> float:
    """Seconds the migration's fill of the latency buckets (audit 0007) takes on the seeded rows, run again
    (it sets the same counts the seed gave them)."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("audit.migrations.0007_usage_latency_buckets")
    began = time.perf_counter()
    with connection.schema_editor() as editor:
        migration.fill_from_audit_rows(apps, editor)
    return time.perf_counter() - began


def timed(client, url: str, runs: int) -> dict:
    """Median milliseconds of `runs` GETs after one untimed GET; that GET's queries."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # as the request will: else what was logged before hides what it logs
    with CaptureQueriesContext(connection) as capture:
        response = client.get(url)
    queries = list(capture.captured_queries)  # a view of the log, which the next request clears
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code}")
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - began) * 1000)
    return {"ms": statistics.median(times), "queries": len(queries),
            "slowest_sql_ms": max((float(q["time"]) * 1000 for q in queries), default=0),
            "full_count": any(full_count(q["sql"]) for q in queries),
            "slowest_sql": max(queries, key=lambda q: float(q["time"]), default={"sql": ""})["sql"][:400]}


def full_count(sql: str) -> bool:
    """Whether a statement counts audit rows without a LIMIT."""
    upper = sql.upper()
    return "COUNT(" in upper and "AUDIT_AUDITEVENT" in upper and "LIMIT" not in upper


@contextmanager
def old_admin():
    """The registered AuditEventAdmin made as audit/admin.py had it before (commit b32f244): Django's
    paginator and full result count, date_hierarchy, a DISTINCT per field filter, substring search.
    The instance is changed, not replaced: the admin's URLs are bound to it."""
    from django.contrib import admin
    from django.core.paginator import Paginator

    from audit.models import AuditEvent

    model_admin = admin.site._registry[AuditEvent]
    old = {"paginator": Paginator, "show_full_result_count": True, "show_facets": admin.ShowFacets.ALLOW,
           "list_filter": ["kind", "outcome", "streaming", "provider", "status", "created_at"],
           "search_fields": ["llm_name", "actor", "request_id", "object_repr", "token_sha"],
           "date_hierarchy": "created_at", "list_select_related": ["user"], "sortable_by": None,
           "get_paginator": admin.ModelAdmin.get_paginator.__get__(model_admin)}
    for name, value in old.items():
        setattr(model_admin, name, value)
    try:
        yield
    finally:
        for name in old:
            delattr(model_admin, name)


def write_rows(batch: int, size: int) -> list[dict]:
    """A batch of finished calls, each of its own token (a rollup key each: the upsert's worst case), half
    of them streams."""
    from audit.models import INFERENCE

    return [{"kind": INFERENCE, "llm_name": "bench-write", "actor": "bench", "status": 200, "outcome": "ok",
             "prompt_tokens": 10, "completion_tokens": 5, "request_id": f"w{batch}-{i}-{os.urandom(6).hex()}",
             "token_sha": os.urandom(32).hex(), "duration_ms": 200 + 37 * i, "streaming": i % 2 == 0,
             "ttft_ms": 80 + 11 * i if i % 2 == 0 else None} for i in range(size)]


def write_batch_ms(batches: int = 10, size: int = 500, *, without_buckets: bool = False) -> float:
    """Median ms of audit.writer.insert_rows (the live write path, rollups included) for one 500-row batch."""
    times = []
    for b in range(batches):
        times.append(write_once(write_rows(b, size), without_buckets))
    return statistics.median(times)


def write_batch_ab(batches: int = 20, size: int = 500) -> tuple[float, float]:
    """Median ms of a 500-row insert_rows with the rollups' latency buckets, and with the rollups as they were
    before them (their 8 sums only), in alternating batches (alternating which goes first), so that both
    meet the same load of a shared machine."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for b in range(batches):
        for without in ((True, False) if b % 2 else (False, True)):
            times[without].append(write_once(write_rows(2 * b + without, size), without))
    return statistics.median(times[False]), statistics.median(times[True])


def write_once(rows: list[dict], without_buckets: bool) -> float:
    from audit import rollups
    from audit.writer import insert_rows

    real_add = rollups.add
    if without_buckets:
        rollups.add = add_without_buckets
    try:
        began = time.perf_counter()
        insert_rows(rows)
        return (time.perf_counter() - began) * 1000
    finally:
        rollups.add = real_add


def add_without_buckets(rows: list[dict], day) -> None:
    """audit.rollups.add as it was before the latency buckets (commit f52c0aa): the same upsert of 8 sums."""
    from decimal import Decimal

    from django.db import connection

    from audit.models import Outcome, UsageDay

    totals: dict[tuple, list] = {}
    for row in rows:
        user = row.get("user")
        key = (day, row.get("llm_name") or "", getattr(user, "pk", None) or 0, row.get("token_sha") or "")
        sums = totals.setdefault(key, [0, 0, 0, 0, 0, 0, Decimal(0), 0])
        cost = row.get("cost")
        sums[0] += 1
        sums[1] += row.get("outcome") == Outcome.ERROR
        sums[2] += row.get("prompt_tokens") or 0
        sums[3] += row.get("completion_tokens") or 0
        sums[4] += row.get("cache_read_tokens") or 0
        sums[5] += row.get("cache_write_tokens") or 0
        if cost is None:
            sums[7] += 1
        else:
            sums[6] += cost
    quote = connection.ops.quote_name
    table = quote(UsageDay._meta.db_table)
    names = ("day", "llm_name", "user_id", "token_sha", "calls", "errors", "prompt_tokens", "completion_tokens",
             "cache_read_tokens", "cache_write_tokens", "cost", "unpriced_calls")
    columns = [quote(name) for name in names]
    added = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in columns[4:])
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
           f"ON CONFLICT ({', '.join(columns[:4])}) DO UPDATE SET {added}")
    day_field, cost_field = UsageDay._meta.get_field("day"), UsageDay._meta.get_field("cost")
    params = [[day_field.get_db_prep_save(key[0], connection), *key[1:], *sums[:6],
               cost_field.get_db_prep_save(sums[6], connection), sums[7]] for key, sums in sorted(totals.items())]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def table_mb(connection) -> dict[str, float]:
    """The audit table's size and its indexes' (MB)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_table_size('audit_auditevent'), pg_indexes_size('audit_auditevent')")
            table, indexes = cursor.fetchone()
        else:
            try:
                cursor.execute("SELECT name = 'audit_auditevent', SUM(pgsize) FROM dbstat "
                               "WHERE name = 'audit_auditevent' OR name IN (SELECT name FROM sqlite_master "
                               "WHERE tbl_name = 'audit_auditevent' AND type = 'index') GROUP BY 1")
                sizes = dict(cursor.fetchall())
                table, indexes = sizes.get(1, 0), sizes.get(0, 0)
            except Exception:  # SQLite built without the dbstat table
                return {}
    return {"table": table / 1e6, "indexes": indexes / 1e6}


# --- the report


def report(results: dict, args: argparse.Namespace, elapsed: float) -> None:
    vendors = list(results)
    names = list(dict.fromkeys(name for r in results.values() for name in r["pages"]))
    headings = ["page (median ms; slowest SQL ms; full count)"]
    for vendor in vendors:
        headings += [f"{vendor} before", f"{vendor} after"] if not args.no_before else [vendor]
    rows = []
    for name in names:
        row = [name]
        for vendor in vendors:
            page = results[vendor]["pages"].get(name, {})
            for when in (("before", "after") if not args.no_before else ("after",)):
                row.append(cell(page.get(when)))
        rows.append(row)
    print(f"\n== {args.rows:,} audit rows; median of {args.runs} requests ({BEFORE_RUNS} before)")
    widths = [max(len(r[i]) for r in [headings, *rows]) for i in range(len(headings))]
    for line in [headings, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    print()
    for vendor, result in results.items():
        s = result["steps"]
        sizes = s.get("table_mb") or {}
        print(f"{vendor} ({result['database']}): seeded {s['rows']:,} rows in {s['insert_s']:.0f} s "
              f"({s['rows'] / s['insert_s']:,.0f}/s), {s['rollups']:,} rollups in {s['rollups_s']:.0f} s "
              f"(match the rows: {'yes' if s['rollups_match'] else 'NO'}, checked in {s['check_s']:.0f} s)"
              + (f"; indexes built by audit 0006 in {s['index_s']:.0f} s" if "index_s" in s else "")
              + (f"; latency buckets filled by audit 0007 in {s['buckets_s']:.0f} s" if "buckets_s" in s else "")
              + (f"; audit 0007's fill of the latency buckets, rerun: {s['fill_s']:.0f} s" if "fill_s" in s else "")
              + f" (buckets match the rows: {'yes' if s['buckets_match'] else 'NO'})"
              + (f"; table {sizes['table']:,.0f} MB + indexes {sizes['indexes']:,.0f} MB" if sizes else "")
              + "; a 500-row audit write " + (f"{s['write_before_ms']:.1f} ms before the indexes, "
                                               if "write_before_ms" in s else "")
              + f"{s['write_after_ms']:.1f} ms now, {s['write_no_buckets_ms']:.1f} ms without the latency buckets")
    print(f"{os.cpu_count()} cores; run took {elapsed:.0f} s; command: {' '.join(sys.argv)}")


def cell(measured: dict | None) -> str:
    if not measured:
        return "-"
    return f"{measured['ms']:,.0f}; {measured['slowest_sql_ms']:,.0f}" + ("; FULL" if measured["full_count"] else "")


if __name__ == "__main__":
    main()
