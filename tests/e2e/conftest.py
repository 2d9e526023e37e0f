"""The production server as `make run` starts it: migrate, collectstatic, then gunicorn on a free port.

One server per pytest session (per xdist worker), in a throwaway MCPD_DATA_DIR that mcpd creates
itself, as on a fresh checkout, with a fresh SQLite file, and a TMPDIR of its own (where
gunicorn.conf.py puts the Prometheus files). Tests reach it over HTTP (``server.url``) and configure
it as an operator would, with ``server.manage(...)`` (a ``manage.py`` subprocess against the same
data dir). The server's output goes to ``server.log_path`` and is attached to the report of any
failing test that used it.
Tests that need a server configured differently start their own with ``running_server(...)``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running gunicorn serving mcpd, and the environment its manage.py commands share."""

    url: str
    data_dir: Path
    tmp_dir: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    def manage(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
               check: bool = True) -> str:
        """Run ``manage.py ARGS`` against the server's data dir; its stdout (stderr shown on failure)."""
        done = subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})},
                              input=input, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}\n"
                                 f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        return done.stdout

    def log(self) -> str:
        """Everything gunicorn and mcpd wrote so far (access log, errors)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _server_env(data_dir: Path, tmp_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPD_", "DJANGO_"))}
    for name in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    env.update(HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="2", MCPD_KEEPALIVE="1",
               MCPD_DEBUG="false", MCPD_DATA_DIR=str(data_dir), TMPDIR=str(tmp_dir), PYTHONUNBUFFERED="1")
    return env


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            raise AssertionError(f"gunicorn exited {server.process.returncode} at start:\n{server.log()}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still starting up
            pass
        time.sleep(0.1)
    raise AssertionError(f"/healthz did not answer 200 within {START_TIMEOUT:.0f} s:\n{server.log()}")


def _stop(server: Server) -> int:
    """SIGTERM (graceful shutdown), then wait; kill only if it hangs. Gunicorn's exit status."""
    process = server.process
    assert process is not None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"gunicorn did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM:\n{server.log()}") from exc
    return process.returncode


_prepared: list[Path] = []  # a data dir set up as `make run` does, copied for the next servers


def _prepare(server: Server) -> None:
    """migrate and collectstatic, as `make run` does; a later server of the session starts from a copy
    of the first one's result (both take seconds, and every such server needs the same)."""
    fresh = not server.data_dir.exists() and "DATABASE_URL" not in server.env  # a copy holds SQLite's tables
    if fresh and _prepared:
        shutil.copytree(_prepared[0], server.data_dir)
        return
    server.manage("migrate", "--no-input")
    server.manage("collectstatic", "--no-input", "-v0")
    if fresh:
        template = server.tmp_dir.parent / "prepared-data-dir"
        shutil.copytree(server.data_dir, template)
        _prepared.append(template)


@contextmanager
def running_server(tmp_path_factory, *, env: dict[str, str] | None = None, args: Sequence[str] = (),
                   data_dir: Path | None = None) -> Iterator[Server]:
    """mcpd served by gunicorn as `make run` does, on a fresh SQLite data dir, until the block ends.

    `env` adds to the server's environment (settings; a DATABASE_URL there moves it to that database),
    `args` to gunicorn's command line; `data_dir` shares another server's data dir (and database).
    """
    if os.environ.get("DATABASE_URL"):
        pytest.skip("the e2e tests exercise `make run`'s embedded SQLite default; DATABASE_URL is set")
    data_dir = data_dir or tmp_path_factory.mktemp("mcpd") / "var"  # not there yet: mcpd creates it
    tmp_dir = tmp_path_factory.mktemp("mcpd-tmp")
    port = free_port()
    server = Server(url=f"http://127.0.0.1:{port}", data_dir=data_dir, tmp_dir=tmp_dir,
                    env={**_server_env(data_dir, tmp_dir, port), **(env or {})},
                    log_path=tmp_path_factory.mktemp("mcpd-log") / "gunicorn.log")
    _prepare(server)
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", *args, "mcpd.wsgi"], cwd=ROOT,
                                          env=server.env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_healthy(server)
        yield server
    finally:
        status = _stop(server)
    assert status == 0, f"gunicorn exited {status} after SIGTERM:\n{server.log()}"


@pytest.fixture(scope="session")
def small_postgres() -> Iterator[str]:
    """A PostgreSQL of its own (tests/pg.sh) that allows only 50 connections; the URL of a fresh database."""
    env = {**os.environ, "MCPD_TEST_PG_PORT": "25435", "MCPD_TEST_PG_MAX_CONNECTIONS": "50",
           "MCPD_TEST_PG_ROOT": "/tmp/mcpd-test-pg-small"}
    url = subprocess.run(["bash", "tests/pg.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS mcpd_scale")
        db.execute("CREATE DATABASE mcpd_scale")
    try:
        yield url.rsplit("/", 1)[0] + "/mcpd_scale"
    finally:
        subprocess.run(["bash", "tests/pg.sh", "stop"], cwd=ROOT, env=env, check=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """mcpd served by gunicorn exactly as `make run` does, on a fresh SQLite data dir."""
    with running_server(tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where the browser tests save their screenshots: MCPD_TEST_ARTIFACTS when set (a stable path, e.g.
    for CI to keep), else a directory under pytest's temporary one. The same names every run."""
    where = os.environ.get("MCPD_TEST_ARTIFACTS")
    path = Path(where).resolve() if where else tmp_path_factory.getbasetemp() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (tests/e2e/browser.py), one per test module."""
    from tests.e2e.browser import chromium

    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def upstream():
    """The loopback fake provider (tests/fakes/upstream.py), one per test module."""
    from tests.fakes.upstream import FakeUpstream

    with FakeUpstream() as fake:
        yield fake


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log of each server a failing test used to its report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, Server):
            report.sections.append((f"mcpd server log (gunicorn, {name})", value.log()[-20000:]))
