"""gunicorn's gevent worker, with a first request allowed longer than the keep-alive wait.

gunicorn's worker reads every request of a connection under one timeout, `keepalive`: a connection that
has not sent its first request within it is closed unread. `keepalive` is an idle time between requests
(a few seconds; behind a load balancer, just above its idle timeout), but a new connection's first bytes
can take longer: under a burst of thousands of connections, clients, TLS terminators and this worker
itself are slow to get to them. A connection's first request is given MCPD_FIRST_REQUEST_TIMEOUT
(nginx's client_header_timeout plays the same part); the ones after it, `keepalive`.

Imported by the master before it forks (gunicorn.conf.py's worker_class): only gevent and gunicorn here,
nothing of Django's, so the workers patch the standard library before anything else loads."""

from __future__ import annotations

import os

import gevent
from gunicorn.workers.ggevent import GeventWorker

FIRST_REQUEST_TIMEOUT = float(os.environ.get("MCPD_FIRST_REQUEST_TIMEOUT", "30"))


class Worker(GeventWorker):
    def timeout_ctx(self) -> gevent.Timeout:
        """The wait for the connection's next request: each connection is served by a greenlet of its
        own, which remembers whether it has read a request yet."""
        connection = gevent.getcurrent()
        if getattr(connection, "mcpd_first_wait_given", False):
            return gevent.Timeout(self.cfg.keepalive, False)
        connection.mcpd_first_wait_given = True
        return gevent.Timeout(max(FIRST_REQUEST_TIMEOUT, self.cfg.keepalive), False)
