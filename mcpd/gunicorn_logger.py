"""gunicorn's own log lines (its errors and its access log) as JSON, for MCPD_LOG_FORMAT=json: then every
line a server writes is one JSON object (gunicorn.conf.py picks this logger class)."""

from __future__ import annotations

from gunicorn.glogging import Logger

from mcpd.logs import JsonFormatter


class JsonLogger(Logger):
    """Each access as {"access": {...}}, built from gunicorn's atoms and escaped as JSON (a request line
    is the client's text: written into a template it could break the line, or forge another)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.cfg.accesslog:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        line = {"remote": atoms.get("h"), "method": atoms.get("m"), "path": atoms.get("U"),
                "query": atoms.get("q") or None, "status": atoms.get("s"), "bytes": atoms.get("B"),
                "ms": atoms.get("M"), "request_id": atoms.get("{x-request-id}o")}
        self.access_log.info("access", extra={"access": {k: v for k, v in line.items() if v not in (None, "-")}})
