"""gunicorn settings for `make run` and production: every value from the environment."""

import multiprocessing
import os
import shutil
import tempfile

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
# It is emptied when the server starts, so counters restart with it as Prometheus expects.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(),
                                                                               f"mcpd-metrics-{os.getpid()}"))


def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
