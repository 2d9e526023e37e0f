"""The one writer of AuditEvent rows: CallRecord for inference calls, record_change for everything else."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import models

from audit import writer
from audit.context import current_actor
from audit.models import INFERENCE, AuditEvent, Outcome
from llms.pricing import Prices, cost_of
from mcpd.logs import log_call
from mcpd.metrics import AUDIT_WRITE_FAILURES, observe_call
from mcpd.tracing import record_call as record_span

log = logging.getLogger(__name__)


def record_change(kind: str, obj: Any, detail: dict[str, Any] | None = None) -> None:
    """One audit row for a change (kind such as 'llm.created'); never holds a secret value."""
    user, label = current_actor()
    detail = {key: column_safe(value) if isinstance(value, str) else value for key, value in (detail or {}).items()}
    AuditEvent.objects.create(**fit_columns({
        "kind": kind,
        "user": user if getattr(user, "pk", None) else None,
        "actor": label,
        "object_type": type(obj).__name__.lower(),
        "object_repr": str(obj),
        "detail": detail,
    }))


@cache
def _column_lengths() -> dict[str, int]:
    return {field.name: field.max_length for field in AuditEvent._meta.concrete_fields
            if isinstance(field, models.CharField) and field.max_length}


def column_safe(text: str, limit: int | None = None) -> str:
    """Text any database stores: no NUL (PostgreSQL refuses it), no lone surrogate (UTF-8 cannot
    encode it), at most `limit` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if limit is None else text[:limit]


def fit_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields with every string made storable and clipped to its column: a client chooses some of
    them (the Llm name it asks for), and an insert that fails would lose the row."""
    lengths = _column_lengths()
    return {name: column_safe(value, lengths.get(name)) if isinstance(value, str) else value
            for name, value in fields.items()}


@dataclass(frozen=True)
class Caller:
    """Who makes an inference call, as the audit row records it: handed by each entry point (a view,
    `manage.py llm test`, the shell) to the service, which owns the call's record."""

    user: Any = None
    token_sha: str = ""  # hex SHA-256 of the bearer token; empty for a session or a command
    request_id: str = ""
    client_ip: str | None = None
    actor: str = ""  # who acts when there is no user, e.g. "manage.py llm test"


class CallRecord:
    """One inference call: started -> (fields filled as it goes) -> finish() writes exactly one row.

    `outcome` starts as client_disconnected: a stream that is closed before it completes keeps it.
    """

    def __init__(self, caller: Caller, *, api: str, streaming: bool):
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.finished = False
        self.llm_resolved = False  # only a found Llm's name may become a metrics label
        self.prices: Prices | None = None
        self.on_finish: list[Callable[[dict[str, Any]], None]] = []  # told the row's fields once it is final
        self.headers: dict[str, str] = {}  # for the response (the limits' x-ratelimit-*)
        user = caller.user if getattr(caller.user, "pk", None) else None
        self.fields: dict[str, Any] = {
            "kind": INFERENCE,
            "api": api,
            "user": user,
            "actor": getattr(user, "username", "") or caller.actor,
            "token_sha": caller.token_sha,
            "request_id": caller.request_id or uuid.uuid4().hex,
            "client_ip": caller.client_ip,
            "streaming": streaming,
            "outcome": Outcome.CLIENT_DISCONNECTED,
            "status": 200,
        }

    def requested(self, name: str) -> None:
        """The Llm name the client asked for, before it is found (or refused)."""
        self.fields["llm_name"] = name

    def set_llm(self, name: str, provider: str, model: str, prices: Prices | None = None) -> None:
        """The Llm that serves the call, and its prices now (the row's cost is computed from them)."""
        self.fields.update(llm_name=name, provider=provider, model=model)
        self.prices = prices
        self.llm_resolved = True

    def note(self, text: str) -> None:
        """Something the call did that the client did not ask for (an item it could not pass on)."""
        self.fields.setdefault("detail", {}).setdefault("notes", []).append(text)

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def set_usage(self, usage) -> None:
        """Token counts as the provider reported them (a Usage; None where it did not say)."""
        self.fields.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                           cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens)

    def ok(self, status: int = 200) -> None:
        self.fields.update(outcome=Outcome.OK, status=status)

    def fail(self, error: Any, status: int | None = None) -> None:
        """Mark the call failed with an ApiError (or any exception, status given)."""
        self.fields.update(
            outcome=Outcome.ERROR,
            status=status if status is not None else getattr(error, "status", 500),
            error=str(getattr(error, "detail", None) or getattr(error, "message", error))[:2000],
        )

    def fail_mid_stream(self, error: Any) -> None:
        """Mark a stream failed after its 200 went out: the status stays the one sent."""
        self.fields.update(
            outcome=Outcome.ERROR,
            error=f"after the stream began: {error.status} {error.type}: {error.message}"[:2000],
        )

    def finish(self) -> None:
        """Write the row once; later calls do nothing. A write that fails anyway is logged and counted,
        never raised: the client's answer (or stream) is already on its way."""
        if self.finished:
            return
        self.finished = True
        duration = time.monotonic() - self.started
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        self.fields["duration_ms"] = int(duration * 1000)
        if ttft is not None:
            self.fields["ttft_ms"] = int(ttft * 1000)
        self.fields["cost"] = cost_of(self.prices, self.fields)
        for told in self.on_finish:
            try:
                told(self.fields)
            except Exception:
                log.exception("after inference request %s", self.fields.get("request_id"))
        try:
            log_call(self.fields)
            record_span(self.fields, duration, ttft)
        except Exception:
            log.exception("logging or tracing inference request %s", self.fields.get("request_id"))
        try:
            observe_call(self.fields, duration, ttft, resolved=self.llm_resolved)
            row = fit_columns(self.fields)
            if writer.running():
                writer.WRITER.submit(row)  # written in the background, with the rows of other calls
            else:
                _insert(row)
        except Exception:
            AUDIT_WRITE_FAILURES.inc()
            log.exception("AUDIT ROW LOST for inference request %s (llm %r, status %s)",
                          self.fields.get("request_id"), str(self.fields.get("llm_name"))[:100],
                          self.fields.get("status"))


def _insert(fields: dict[str, Any]) -> None:
    """The row and its rollup at once, as the writer does for a batch (a savepoint inside a transaction, so
    that a failure does not break the caller's)."""
    writer.insert_rows([fields])


def refused(caller: Caller, *, api: str, llm_name: str, error: Any, status: int, streaming: bool = False) -> None:
    """The one audit row of a call refused before the service took it (401, 403/404, a bad body)."""
    record = CallRecord(caller, api=api, streaming=streaming)
    record.requested(llm_name)
    record.fail(error, status=status)
    record.finish()
