"""gunicorn settings for `make run` and production: every value from the environment."""

import glob
import multiprocessing
import os
import resource
import tempfile

# Before anything is written: the master's Prometheus directory, its workers' sample files (and
# mcpd's data dir, which settings.py guards again) are this user's alone. gunicorn's own `umask`
# setting stays 0: it only applies to a unix socket, which the proxy in front must reach.
os.umask(0o077)

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# gevent: an LLM call mostly waits on the provider, and a waiting greenlet costs kilobytes, where a
# thread per call held 16 calls per worker. Every worker patches the standard library at start (the
# app is not preloaded, so nothing of mcpd's is imported before that in any process). mcpd's subclass
# gives a new connection longer than `keepalive` for its first request (mcpd/gunicorn_worker.py).
worker_class = "mcpd.gunicorn_worker.Worker"
worker_connections = int(os.environ.get("MCPD_WORKER_CONNECTIONS", "2000"))
# Each open stream holds two sockets (the client's and the provider's), and the provider connections
# kept for the next calls (MCPD_UPSTREAM_POOL_SIZE per provider host) hold theirs: lift the soft limit on
# open files as far as the hard limit allows, so that worker_connections streams fit in one worker
# beside another host's kept connections.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_wanted = 2 * worker_connections + int(os.environ.get("MCPD_UPSTREAM_POOL_SIZE", worker_connections)) + 256
if _soft != resource.RLIM_INFINITY and _soft < _wanted:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_wanted if _hard == resource.RLIM_INFINITY else min(_wanted, _hard),
                                                _hard))
# The worker's heartbeat to the master runs in its own greenlet: a silent stream never trips it.
timeout = int(os.environ.get("MCPD_WORKER_TIMEOUT", "660"))
# On SIGTERM or SIGHUP (reload), open streams get this long to finish before their worker is stopped.
graceful_timeout = int(os.environ.get("MCPD_GRACEFUL_TIMEOUT", "60"))
# How long an idle client connection is kept for its next request (behind a load balancer, longer than
# the balancer's own idle timeout). A graceful stop waits for these too. A new connection's first request
# may take up to MCPD_FIRST_REQUEST_TIMEOUT (30 s).
keepalive = int(os.environ.get("MCPD_KEEPALIVE", "5"))
accesslog = os.environ.get("MCPD_ACCESS_LOG", "-")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
if os.environ.get("MCPD_LOG_FORMAT") == "json":  # every line one JSON object, gunicorn's own too
    logger_class = "mcpd.gunicorn_logger.JsonLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus: each worker writes its samples to this directory; /metrics sums them (mcpd/metrics.py).
# Its sample files are removed when the server starts and stops, so counters restart with it.
# By default a new directory of our own (mkdtemp: 0700, a name no other user can create first).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mcpd-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
# Imported only now: prometheus_client picks its multiprocess mode from the variable at import time,
# and importing inside child_exit (a signal handler) can re-enter an import in progress.
from prometheus_client import multiprocess  # noqa: E402


def _clear_metrics() -> None:
    for sample_file in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(sample_file)


def on_starting(server):
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)  # an operator's own directory keeps its mode
    _clear_metrics()


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    _clear_metrics()


def post_worker_init(worker):
    from audit import writer  # the app is loaded by now

    writer.start()


def worker_exit(server, worker):
    """After the worker's last request (graceful stop): the audit rows still queued are written."""
    from audit import writer

    writer.stop()
