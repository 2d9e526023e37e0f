"""The LiteLLM proxy for the side-by-side bench: installed into a virtualenv of its own, served offline.

Never a project dependency: `litellm==1.110.2` plus its `proxy` extra's requirements (bench/litellm/
requirements.txt, the list that installs from the registry here) go into a cache directory outside the repo,
on first use (~1 min), reused afterwards. Served as its docs say, with one worker and no database, against
the stand-in (bench/litellm/config.yaml: an `openai/…` and an `anthropic/…` model), on 127.0.0.1.
Offline: LITELLM_LOCAL_MODEL_COST_MAP=True makes it read its bundled model cost map instead of fetching
it from GitHub at start-up (its only outbound attempt we saw, with strace, in start-up and calls).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from harness import BENCH, free_port

VERSION = "1.110.2"
FILES = BENCH / "litellm"
REQUIREMENTS = FILES / "requirements.txt"
MASTER_KEY = "sk-bench-master-key"  # general_settings.master_key in the config
MODELS = {"openai": "fake-openai", "anthropic": "fake-anthropic"}  # route -> model_name in the config
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # the bundled cost map, not raw.githubusercontent.com


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mcpd-bench" / f"litellm-{VERSION}"


def _fingerprint() -> str:
    return hashlib.sha256(f"litellm=={VERSION}\n".encode() + REQUIREMENTS.read_bytes()).hexdigest()


def install(venv: Path) -> Path:
    """The virtualenv, installed unless an earlier complete install of the same requirements is there."""
    marker = venv / ".mcpd-bench-installed"
    if marker.exists() and marker.read_text() == _fingerprint():
        return venv
    shutil.rmtree(venv, ignore_errors=True)  # a half-done or older install: start again
    print(f"installing LiteLLM {VERSION} into {venv} (first use, about a minute) …", flush=True)
    started = time.monotonic()
    venv.parent.mkdir(parents=True, exist_ok=True)
    # sys.executable is the project's Python 3.11; the new venv is built on its base interpreter.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                           f"litellm=={VERSION}", "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"installing LiteLLM failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    marker.write_text(_fingerprint())
    print(f"  installed in {time.monotonic() - started:.0f} s", flush=True)
    return venv


class LiteLlm:
    """`VENV/bin/litellm --config CONFIG --port PORT --num_workers 1` on 127.0.0.1, in its own session."""

    def __init__(self, venv: Path, upstream_base: str, work_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = work_dir / "litellm-config.yaml"
        config.write_text((FILES / "config.yaml").read_text().replace("__UPSTREAM__", upstream_base))
        self.log = work_dir / "litellm.log"
        self.log.write_text("")
        env = {**os.environ, **OFFLINE, "PYTHONUNBUFFERED": "1"}
        for name in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST"):  # no database, no cache: as configured
            env.pop(name, None)
        self.command = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
                        "--port", str(self.port), "--num_workers", "1"]
        self._env, self._cwd = env, work_dir
        self.start()

    def start(self) -> None:
        """Start it (again, on the same port: a restart appends to the same log)."""
        started = time.monotonic()
        with open(self.log, "a") as log:
            self._proc = subprocess.Popen(self.command, cwd=self._cwd, env=self._env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._proc.pid
        while time.monotonic() < started + 120:
            if self._proc.poll() is not None:
                raise RuntimeError(f"litellm exited:\n{self.log.read_text()[-3000:]}")
            if self.answers(2):
                self.started_in = time.monotonic() - started
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"litellm did not become ready:\n{self.log.read_text()[-3000:]}")

    def answers(self, timeout: float) -> bool:
        """Whether its liveness probe answers within `timeout` seconds."""
        try:
            return requests.get(f"{self.url}/health/liveliness", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """SIGTERM to the process group we started (litellm and its children), SIGKILL after 10 s."""
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
