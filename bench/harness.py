"""Bench plumbing: the stand-in provider, an mcpd set up with manage.py, gunicorn as `make run` starts it,
and the same setup loaded in-process for query counts and profiles. Loopback only; everything is torn down."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_label(database_url: str | None) -> str:
    """'sqlite (default, WAL)' or 'postgresql @ host:port/db' (never the password)."""
    if not database_url:
        return "sqlite (default, WAL)"
    url = urlsplit(database_url)
    return f"{url.scheme} @ {url.hostname}:{url.port or ''}{url.path}"


class Upstream:
    """The fast stand-in (bench/fast_upstream.py) in its own process, so it does not share our GIL."""

    def __init__(self, chunks: int):
        self._proc = subprocess.Popen([PYTHON, str(BENCH / "fast_upstream.py"), "--chunks", str(chunks)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline().split() if self._proc.stdout else []
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError("the stand-in upstream did not start")
        self.port = int(line[1])
        self.pid = self._proc.pid
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._stats = requests.Session()  # one kept-alive connection, so asking adds no connection

    def stats(self) -> dict[str, int]:
        """Connections accepted and requests served so far, streams open now."""
        return self._stats.get(f"http://127.0.0.1:{self.port}/__stats", timeout=5).json()

    def stop(self) -> None:
        if self._proc.poll() is None:
            if self._proc.stdin:
                self._proc.stdin.close()  # the stand-in serves until its stdin closes
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@dataclass
class Mcpd:
    """An mcpd data dir (and database) set up for the bench: Llm, user with a per-object run grant, token."""

    database_url: str | None
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mcpd-bench-")))
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    token: str = ""

    @property
    def llm(self) -> str:
        return f"bench-{self.suffix}"

    @property
    def anthropic_llm(self) -> str:
        return f"bench-{self.suffix}-anthropic"

    @property
    def user(self) -> str:
        return f"bench-{self.suffix}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "MCPD_DATA_DIR": str(self.data_dir), "DJANGO_SETTINGS_MODULE": "mcpd.settings",
               "MCPD_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **extra}
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env

    def manage(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(), input=stdin,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def set_up(self, upstream_url: str, anthropic: bool = False) -> None:
        """migrate, then a db secret, an openai Llm at the stand-in (and, if asked, an anthropic one), a user
        granted run on each, a token."""
        self.manage("migrate", "--no-input")
        self.manage("secret", "set", f"bench-key-{self.suffix}", "--backend", "db", "--stdin",
                    stdin="sk-bench-" + secrets.token_hex(16))
        self.manage("llm", "add", self.llm, "--provider", "openai", "--model", "bench-model",
                    "--base-url", upstream_url, "--secret", f"bench-key-{self.suffix}")
        if anthropic:
            self.manage("llm", "add", self.anthropic_llm, "--provider", "anthropic", "--model", "claude-bench",
                        "--base-url", upstream_url, "--secret", f"bench-key-{self.suffix}")
        self.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                    f"get_user_model().objects.create_user({self.user!r})")
        self.manage("llm", "grant", self.llm, "--user", self.user)
        if anthropic:
            self.manage("llm", "grant", self.anthropic_llm, "--user", self.user)
        self.token = self.manage("token", "issue", self.user, "--name", "bench").strip().splitlines()[-1]

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Gunicorn:
    """`.venv/bin/gunicorn -c gunicorn.conf.py mcpd.wsgi`, as `make run` starts it, on 127.0.0.1.

    The environment carries what gunicorn.conf.py reads, whichever of them the server of the day uses
    (MCPD_THREADS for gthread, MCPD_WORKER_CONNECTIONS for an event-loop worker); `extra_args` go after the
    command (e.g. `-k gevent` to try a worker class before gunicorn.conf.py names it): none by default."""

    def __init__(self, mcpd: Mcpd, workers: int, threads: int, worker_connections: int | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = mcpd.data_dir / "gunicorn.log"
        self.log.write_text("")
        extra = {"MCPD_WORKER_CONNECTIONS": str(worker_connections)} if worker_connections else {}
        self._env = mcpd.env(HOST="127.0.0.1", PORT=str(self.port), WEB_CONCURRENCY=str(workers),
                             MCPD_THREADS=str(threads), MCPD_ACCESS_LOG="/dev/null", **extra)
        self._workers = workers
        self.command = [GUNICORN, "-c", "gunicorn.conf.py", *extra_args, "mcpd.wsgi"]
        self.start()

    def start(self) -> None:
        """Start it (again, on the same port: a restart appends to the same log)."""
        logged = len(self.log.read_text())
        with open(self.log, "a") as log:
            self._proc = subprocess.Popen(self.command, cwd=ROOT, env=self._env,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._proc.pid
        self._wait_ready(logged)

    def answers(self, timeout: float) -> bool:
        """Whether /healthz answers within `timeout` seconds."""
        try:
            return requests.get(f"{self.url}/healthz", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def _wait_ready(self, logged: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()[-2000:]}")
            if self.answers(2) and self.log.read_text()[logged:].count("Booting worker") >= self._workers:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM to the gunicorn arbiter we started (it stops its workers), SIGKILL after 10 s."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()


def django_in_process(mcpd: Mcpd) -> None:
    """Load Django in this process against the bench's data dir and database (already migrated)."""
    os.environ.update({k: v for k, v in mcpd.env().items() if k.startswith(("MCPD_", "DJANGO_", "DATABASE_"))})
    if not mcpd.database_url:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django

    django.setup()


def chat_body(model: str, stream: bool) -> bytes:
    """The client's request: a short chat, compact JSON (the stand-in looks for `"stream":true`)."""
    body: dict = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()
