"""The data dir and the SQLite database are the server user's alone, on a fresh install and after an upgrade.

Each case imports the real settings in a fresh interpreter, as `manage.py` and gunicorn's workers do.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_settings(data_dir: Path, **env: str) -> str:
    """Import mcpd.settings with MCPD_DATA_DIR=data_dir; what it prints: the process's umask after it."""
    script = "import os, mcpd.settings; print(oct(os.umask(0)))"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MCPD_", "DJANGO_")) and k != "DATABASE_URL"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, "MCPD_DATA_DIR": str(data_dir), **env}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):o}"


def test_a_new_data_dir_is_0700_and_its_database_0600_before_sqlite_opens_it(tmp_path):
    data_dir = tmp_path / "var"
    assert import_settings(data_dir) == "0o77"
    assert (mode(data_dir), mode(data_dir / "mcpd.sqlite3")) == ("700", "600")
    assert mode(data_dir / "secret_key") == "600"


def test_an_older_install_is_tightened(tmp_path):
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    for name in ("mcpd.sqlite3", "mcpd.sqlite3-wal", "mcpd.sqlite3-shm"):
        (data_dir / name).write_bytes(b"")
        (data_dir / name).chmod(0o644)
    import_settings(data_dir)
    assert mode(data_dir) == "700"
    assert [mode(data_dir / n) for n in ("mcpd.sqlite3", "mcpd.sqlite3-wal", "mcpd.sqlite3-shm")] == ["600"] * 3


def test_a_database_elsewhere_is_created_0600_and_its_directory_left_alone(tmp_path):
    elsewhere = tmp_path / "db"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    import_settings(tmp_path / "var", DATABASE_URL=f"sqlite:///{elsewhere / 'x.sqlite3'}")
    assert (mode(elsewhere), mode(elsewhere / "x.sqlite3")) == ("755", "600")
