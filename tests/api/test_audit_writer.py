"""The background audit writer: rows written in batches, in order, once; nothing queued lost on a stop."""

from __future__ import annotations

import logging
import threading

import pytest

from audit import writer as writer_module
from audit.models import INFERENCE, AuditEvent
from audit.writer import AuditWriter, insert_rows
from mcpd import metrics
from tests.api.calls import CHAT, infer, rows
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def row(n: int) -> dict:
    return {"kind": INFERENCE, "llm_name": "gpt", "request_id": f"req-{n}", "status": 200, "outcome": "ok"}


def request_ids() -> list[str]:
    return list(AuditEvent.objects.filter(kind=INFERENCE).order_by("id").values_list("request_id", flat=True))


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_PAUSES", (0.01,))


def test_rows_are_written_in_order_and_in_batches():
    batches = []
    gate = threading.Event()

    def write(batch):
        gate.wait(5)  # the first write waits: meanwhile the rest queue up behind it
        batches.append(len(batch))
        insert_rows(batch)

    writer = AuditWriter(write)
    writer.start()
    for n in range(1200):
        writer.submit(row(n))
    gate.set()
    wait_for(lambda: len(request_ids()) == 1200)
    writer.stop()
    assert request_ids() == [f"req-{n}" for n in range(1200)]
    assert len(batches) <= 5 and max(batches) <= writer_module.MAX_BATCH  # not one INSERT per row


def test_stop_writes_what_is_queued():
    writer = AuditWriter()
    writer.start()
    for n in range(50):
        writer.submit(row(n))
    writer.stop()
    assert len(request_ids()) == 50 and writer.pending() == 0


def test_a_refused_batch_is_retried_and_written_once(fast_retries, caplog):
    failures = [RuntimeError("database restarting")] * 2

    def write(batch):
        if failures:
            raise failures.pop()
        insert_rows(batch)

    writer = AuditWriter(write)
    writer.start()
    with caplog.at_level(logging.ERROR, logger="audit.writer"):
        for n in range(3):
            writer.submit(row(n))
        wait_for(lambda: len(request_ids()) == 3)
    writer.stop()
    assert request_ids() == ["req-0", "req-1", "req-2"]
    assert "retrying" in caplog.text


def test_rows_the_database_never_takes_are_logged_and_counted_at_stop(fast_retries, monkeypatch, caplog):
    monkeypatch.setattr(writer_module, "STOP_DEADLINE", 0.2)

    def write(batch):
        raise RuntimeError("database gone")

    writer = AuditWriter(write)
    writer.start()
    before = metrics.AUDIT_WRITE_FAILURES._value.get()
    with caplog.at_level(logging.ERROR, logger="audit.writer"):
        writer.submit(row(1))
        writer.submit(row(2))
        writer.stop(deadline=0.3)
    assert metrics.AUDIT_WRITE_FAILURES._value.get() == before + 2
    assert caplog.text.count("AUDIT ROW LOST") == 2 and "req-2" in caplog.text


def test_inference_calls_go_through_the_running_writer(alice, client_for, upstream_llm, fake_upstream, monkeypatch):
    writer = AuditWriter()
    monkeypatch.setattr(writer_module, "WRITER", writer)
    writer.start()
    try:
        assert writer_module.running()
        client = client_for(alice)
        for _ in range(3):
            assert infer(client, CHAT).status_code == 200
        wait_for(lambda: len(rows()) == 3)
    finally:
        writer.stop()
    assert [r.outcome for r in rows()] == ["ok"] * 3


def test_calls_settle_their_limits_with_the_writers_batches(alice, client_for, upstream_llm, fake_upstream,
                                                            monkeypatch):
    """A running writer sums what finished calls add to a window and writes it once per batch."""
    from limits import admission
    from limits.models import Limit

    limit = Limit.objects.create(user=alice, tokens_per_minute=10**6)
    adjusted: list[dict] = []
    store = admission.counters()
    real = store.adjust
    monkeypatch.setattr(store, "adjust", lambda deltas: (adjusted.append(dict(deltas)), real(deltas)))
    gate, writing = threading.Event(), threading.Event()
    primer = {"primer": True}  # held in a write while the calls end, so their settlements wait together

    def write(batch):
        if primer in batch:
            writing.set()
            gate.wait(5)
        insert_rows([row for row in batch if row is not primer])

    writer = AuditWriter(write)
    monkeypatch.setattr(writer_module, "WRITER", writer)
    writer.start()
    try:
        writer.submit(primer)
        assert writing.wait(5)
        client = client_for(alice)
        for _ in range(3):
            assert infer(client, {**CHAT, "max_tokens": 100}).status_code == 200
        gate.set()
        wait_for(lambda: len(rows()) == 3 and adjusted)
    finally:
        writer.stop()
    [window] = adjusted[0]
    assert window.startswith(f"tpm:{limit.pk}:") and len(adjusted) == 1  # three calls, one adjustment
    from tests.api.counters import counts_of

    assert counts_of(store).value(f"tpm:{limit.pk}:") == 3 * 15  # each call's real 15 tokens
