"""gunicorn settings for `make run` and production: every value from the environment."""

import glob
import multiprocessing
import os
import tempfile

# Before anything is written: the master's Prometheus directory, its workers' sample files (and
# mcpd's data dir, which settings.py guards again) are this user's alone. gunicorn's own `umask`
# setting stays 0: it only applies to a unix socket, which the proxy in front must reach.
os.umask(0o077)

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# Threads, not sync workers: a streamed answer holds its thread for the whole generation, and a
# sync worker would hold the whole process. Each thread is one concurrent call.
worker_class = "gthread"
threads = int(os.environ.get("MCPD_THREADS", "16"))
# A stream can stay silent for a long time while the provider thinks; the worker is alive meanwhile.
timeout = int(os.environ.get("MCPD_WORKER_TIMEOUT", "660"))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("MCPD_ACCESS_LOG", "-")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
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
