"""Logs: one line per inference call (logger `mcpd.calls`), and JSON lines for everything when
MCPD_LOG_FORMAT=json (one object per record: time, level, logger, message, and a call's fields).

A call's line says who called which Llm through which API, how it ended, how long it took and what it
used: never a prompt, an answer, an error text (a provider's may quote the prompt) or a credential.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from mcpd import wirejson

CALLS = logging.getLogger("mcpd.calls")
# The fields of a call's line, in this order (from its audit row's fields).
CALL_FIELDS = ("request_id", "api", "llm", "provider", "model", "user", "token", "streaming", "status", "outcome",
               "duration_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cache_read_tokens",
               "cache_write_tokens", "cost", "deployment", "fallback_from")


def log_call(fields: dict[str, Any]) -> None:
    """The call's line, from its audit fields (see CALL_FIELDS)."""
    if not CALLS.isEnabledFor(logging.INFO):
        return
    user, detail = fields.get("user"), fields.get("detail") or {}
    values = {"request_id": fields.get("request_id"), "api": fields.get("api"), "llm": fields.get("llm_name"),
              "provider": fields.get("provider"), "model": fields.get("model"),
              "user": getattr(user, "username", None), "token": (fields.get("token_sha") or "")[:12] or None,
              "streaming": fields.get("streaming"), "status": fields.get("status"),
              "outcome": str(fields["outcome"]) if fields.get("outcome") else None,
              "duration_ms": fields.get("duration_ms"), "ttft_ms": fields.get("ttft_ms"),
              "prompt_tokens": fields.get("prompt_tokens"), "completion_tokens": fields.get("completion_tokens"),
              "cache_read_tokens": fields.get("cache_read_tokens"), "cache_write_tokens": fields.get("cache_write_tokens"),
              "cost": None if fields.get("cost") is None else str(fields["cost"]),
              "deployment": detail.get("deployment"), "fallback_from": detail.get("fallback_from")}
    call = {name: values[name] for name in CALL_FIELDS if values[name] is not None}
    CALLS.info("inference call %s", " ".join(f"{name}={_plain(value)}" for name, value in call.items()),
               extra={"call": call})


def _plain(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if text and " " not in text and '"' not in text else wirejson.dumps(text).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per line. A call's line carries its fields as `call` (a request's, as `access`),
    not its plain message."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
        }
        for kind in ("call", "access"):  # a call's line (log_call), a request's (mcpd.gunicorn_logger)
            fields = getattr(record, kind, None)
            if fields is not None:
                line["message"] = "inference call" if kind == "call" else "access"
                line[kind] = fields
                break
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return wirejson.dumps(line).decode()
