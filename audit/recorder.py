"""The one writer of AuditEvent rows: CallRecord for inference calls, record_change for everything else."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError

from audit.context import current_actor
from audit.models import INFERENCE, AuditEvent, Outcome
from mcpd.metrics import observe_call

log = logging.getLogger(__name__)


def record_change(kind: str, obj: Any, detail: dict[str, Any] | None = None) -> None:
    """One audit row for a change (kind such as 'llm.created'); never holds a secret value."""
    user, label = current_actor()
    AuditEvent.objects.create(
        kind=kind,
        user=user if getattr(user, "pk", None) else None,
        actor=label,
        object_type=type(obj).__name__.lower(),
        object_repr=str(obj)[:200],
        detail=detail or {},
    )


class CallRecord:
    """One inference call: started -> (fields filled as it goes) -> finish() writes exactly one row.

    `outcome` starts as client_disconnected: a stream that is closed before it completes keeps it.
    """

    def __init__(self, *, user, token_sha: str, request_id: str, client_ip: str | None, streaming: bool):
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.finished = False
        self.fields: dict[str, Any] = {
            "kind": INFERENCE,
            "user": user if getattr(user, "pk", None) else None,
            "actor": getattr(user, "username", "") or "",
            "token_sha": token_sha,
            "request_id": request_id,
            "client_ip": client_ip,
            "streaming": streaming,
            "outcome": Outcome.CLIENT_DISCONNECTED,
            "status": 200,
        }

    def set_llm(self, name: str, provider: str, model: str) -> None:
        self.fields.update(llm_name=name, provider=provider, model=model)

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def set_usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        self.fields.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

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
        """Write the row once; later calls do nothing. A failing write is logged, never raised to the client."""
        if self.finished:
            return
        self.finished = True
        duration = time.monotonic() - self.started
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        self.fields["duration_ms"] = int(duration * 1000)
        if ttft is not None:
            self.fields["ttft_ms"] = int(ttft * 1000)
        observe_call(self.fields, duration, ttft)
        try:
            AuditEvent.objects.create(**self.fields)
        except DatabaseError:
            log.exception("could not write the audit row for request %s", self.fields.get("request_id"))
