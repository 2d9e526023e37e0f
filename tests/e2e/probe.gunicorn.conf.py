"""gunicorn.conf.py as `make run` uses it, plus a probe in each worker, for tests that count what a worker
holds: `running_server(..., args=["-c", PROBE_CONF], env={"FAULTS_PROBE_DIR": DIR})`.

A worker answers a file DIR/ask-PID (the test creates it) with DIR/held-PID.json: its live greenlets
(after a garbage collection), by kind, its threads, and the native threads of gevent's pool (where mcpd
runs SQLite writes: each has a database connection of its own while it lives). Open files and sockets
the test reads from /proc itself. mcpd's code is untouched; the probe is one more greenlet of the worker's.
"""

from pathlib import Path

_CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
_base: dict = {"__file__": str(_CONF), "__name__": "__config__"}
exec(compile(_CONF.read_text(), str(_CONF), "exec"), _base)
globals().update({name: value for name, value in _base.items() if not name.startswith("__")})


def post_worker_init(worker):
    _base["post_worker_init"](worker)
    import os

    import gevent

    if directory := os.environ.get("FAULTS_PROBE_DIR"):
        gevent.spawn(_answer, Path(directory), os.getpid())


def _answer(directory, pid):
    import collections
    import gc
    import json
    import threading

    import gevent
    import greenlet

    ask, held = directory / f"ask-{pid}", directory / f"held-{pid}.json"
    while True:
        gevent.sleep(0.05)
        if not ask.exists():
            continue
        gc.collect()
        live = [g for g in gc.get_objects() if isinstance(g, greenlet.greenlet) and not g.dead]
        kinds = collections.Counter(type(g).__name__ + ":" + getattr(getattr(g, "_run", None), "__qualname__", "-")
                                    for g in live)
        report = {"greenlets": len(live), "kinds": dict(kinds), "threads": sorted(t.name for t in threading.enumerate()),
                  "native_threads": gevent.get_hub().threadpool.size}
        partial = held.with_suffix(".partial")
        partial.write_text(json.dumps(report))
        partial.rename(held)
        ask.unlink()
