"""Inference audit rows written in batches by one writer per server process, after replies have gone out
(with what finished calls add to their tokens' last use and to their limits' windows).

A request hands its finished row to submit() and is done: under load the writer takes whatever has
queued since its last write and inserts it with one multi-row INSERT, in one transaction, on a
connection of its own, so requests neither wait for nor hold a database connection. gunicorn starts
the writer in each worker (gunicorn.conf.py) and stops it after the worker's last request: stop()
writes everything still queued. Where no writer runs (tests, manage.py commands, the shell), rows
are written at once by the caller (audit.recorder).

A row is lost only if the process dies without a graceful stop (at most what had queued since the
last write, normally milliseconds' worth), or if the database refuses it for longer than the writer
keeps trying at stop; each one lost is logged as AUDIT ROW LOST and counted in /metrics.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models, transaction
from django.utils import timezone
from gevent import get_hub, monkey

from audit import rollups
from audit.models import AuditEvent
from mcpd.metrics import AUDIT_WRITE_FAILURES

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 500  # rows per INSERT
# At most one write this often: under gevent a write holds the worker (SQLite's calls do not yield),
# so rows are gathered rather than written one by one between calls.
WRITE_INTERVAL = 0.1
MAX_PENDING = 200_000  # rows kept while the database is unreachable; beyond this they are dropped (logged)
RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts while the database refuses a batch
STOP_DEADLINE = 20.0  # seconds stop() keeps trying to write what is queued


class AuditWriter:
    """One background writer of AuditEvent rows (a thread; a greenlet under gevent's patching)."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], None] | None = None):
        self._write = write or insert_rows
        self._pending: deque[dict[str, Any]] = deque()
        self._touched: dict[int, datetime] = {}  # token id -> when it was last used
        self._deltas: dict[str, int] = {}  # limit window -> what settled calls add to it (limits.admission)
        self._wake = threading.Event()
        self._stop_requested = threading.Event()  # ends a pause early
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        """Start writing in the background; submit() queues from now on."""
        self._stopping = False
        self._stop_requested.clear()
        self._thread = threading.Thread(target=self._run, name="mcpd-audit-writer", daemon=True)
        self._thread.start()

    def submit(self, row: dict[str, Any]) -> None:
        """Queue one finished row (the fields of an AuditEvent)."""
        if len(self._pending) >= MAX_PENDING:
            lost(row, "the queue of unwritten audit rows is full")
            return
        self._pending.append(row)
        self._wake.set()

    def touch(self, token_id: int, when: datetime) -> None:
        """Note a token's use: its last_used_at is written with the next batch (one UPDATE for all)."""
        self._touched[token_id] = when
        self._wake.set()

    def settle(self, deltas: dict[str, int]) -> None:
        """Add to limit windows (settled reservations): summed per window, written with the next batch."""
        for key, delta in deltas.items():
            self._deltas[key] = self._deltas.get(key, 0) + delta
        self._wake.set()

    def stop(self, deadline: float = STOP_DEADLINE) -> None:
        """Write everything queued (trying for up to `deadline` seconds), then stop."""
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(deadline)
        self._thread = None
        self._drain(time.monotonic() + 1.0)  # what the thread could not write before its deadline
        self._write_settlements()
        for row in self._take(len(self._pending)):
            lost(row, "the server stopped before the database accepted it")

    def pending(self) -> int:
        return len(self._pending)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            connection.close()  # the writer's own connection, given back as the thread ends

    def _loop(self) -> None:
        end: float | None = None
        last_write = 0.0
        while True:
            self._wake.wait()
            if not self._stopping:  # gather what comes in the meantime, unless stopping
                pause = last_write + WRITE_INTERVAL - time.monotonic()
                if pause > 0 and len(self._pending) < MAX_BATCH:
                    self._stop_requested.wait(pause)
            self._wake.clear()
            if self._stopping and end is None:
                end = time.monotonic() + STOP_DEADLINE
            last_write = time.monotonic()
            self._drain(end)
            self._write_touches()
            self._write_settlements()
            if self._stopping:
                return

    def _drain(self, end: float | None) -> None:
        """Write batches until the queue is empty (or, stopping, the deadline has passed)."""
        while self._pending:
            batch = self._take(MAX_BATCH)
            if not self._write_with_retries(batch, end):
                self._pending.extendleft(reversed(batch))  # kept, in order, for stop() to report
                return

    def _take(self, count: int) -> list[dict[str, Any]]:
        return [self._pending.popleft() for _ in range(min(count, len(self._pending)))]

    def _write_with_retries(self, batch: list[dict[str, Any]], end: float | None) -> bool:
        """True once the batch is written; False when the stop deadline passed first."""
        for attempt in itertools.count():
            try:
                off_the_hub(self._write, batch)
                return True
            except Exception:
                log.exception("could not write %d audit rows (attempt %d); retrying", len(batch), attempt + 1)
            pause = RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]
            if end is not None and time.monotonic() + pause > end:
                return False
            time.sleep(pause)
        raise AssertionError("unreachable")


    def _write_touches(self) -> None:
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        try:
            off_the_hub(update_last_used, touched)
        except Exception:  # a last-used time is a convenience: logged, not retried
            log.exception("could not record the last use of %d API tokens", len(touched))


    def _write_settlements(self) -> None:
        if not self._deltas:
            return
        deltas, self._deltas = self._deltas, {}
        from limits.admission import adjust

        adjust(deltas)


def off_the_hub(write: Callable[..., T], *args: Any) -> T:
    """Run a database write where it holds up no request (and give its result). Under gevent, in the
    hub's pool of native threads: sqlite3's calls do not yield, and a write run in the worker's own
    thread would stop every greenlet (a stream's next chunk, a new call) until it ended, waits for
    SQLite's lock included. Otherwise here: the writer is a thread."""
    if monkey.is_module_patched("threading"):
        return get_hub().threadpool.apply(write, args)
    return write(*args)


def insert_rows(rows: list[dict[str, Any]]) -> None:
    """One transaction (a savepoint inside the caller's): the rows in one executemany of one INSERT (on
    this thread's own connection), and their sums added to the usage rollups.

    Not bulk_create: building a model instance per row and compiling one statement per batch cost
    ~70 us a row, paid by every call; each field's own get_db_prep_save still adapts its value."""
    sql, fields = _insert_statement()
    now = timezone.now()
    params = [[field.get_db_prep_save(_value(row, field, now), connection) for field in fields] for row in rows]
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.executemany(sql, params)
            rollups.add(rows, now.date())
    except Exception:
        if not connection.in_atomic_block:  # the writer's own connection; never a caller's transaction
            connection.close_if_unusable_or_obsolete()
        raise


@cache
def _insert_statement() -> tuple[str, list[models.Field]]:
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({values})", fields


def _value(row: dict[str, Any], field: models.Field, now: datetime) -> Any:
    """A row's value for a column, as the model would have it: a related object's key, auto_now_add's
    time, the field's default when the row has none."""
    if field.name in row:
        value = row[field.name]
        return getattr(value, "pk", value) if field.is_relation else value
    if getattr(field, "auto_now_add", False):
        return now
    return field.get_default()


def update_last_used(touched: dict[int, datetime]) -> None:
    """The tokens' last_used_at, in one UPDATE (the latest time of them all: it is kept to the minute)."""
    from mcpd.models import ApiToken

    ApiToken.objects.filter(pk__in=list(touched)).update(last_used_at=max(touched.values()))


def lost(row: dict[str, Any], why: str) -> None:
    """Log and count an audit row that will never be written."""
    AUDIT_WRITE_FAILURES.inc()
    log.error("AUDIT ROW LOST for inference request %s (llm %r, status %s): %s", row.get("request_id"),
              str(row.get("llm_name"))[:100], row.get("status"), why)


WRITER = AuditWriter()


def start() -> None:
    """Start this process's writer (gunicorn's post_worker_init)."""
    WRITER.start()


def stop() -> None:
    """Write what is queued and stop (gunicorn's worker_exit, after the last request)."""
    WRITER.stop()


def running() -> bool:
    return WRITER.running


def touch(token_id: int, when: datetime) -> bool:
    """Hand a token's last use to the running writer; False when none runs (write it yourself)."""
    if not WRITER.running:
        return False
    WRITER.touch(token_id, when)
    return True
