"""What mcpd's code touches while it serves cooperates with gevent: a worker patched as gunicorn's gevent
worker patches itself runs many waits at once (the provider's HTTP, Vault, PostgreSQL), each greenlet on a
database connection of its own. sqlite3 and cryptography do not wait on the network: they need not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.xdist_group("e2e-scale")

PATCHED = """
from gevent import monkey; monkey.patch_all()
import json, os, time, gevent, django
django.setup()
"""

VAULT = PATCHED + """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from secrets_app.backends import resolve
from secrets_app.models import Secret
secret = Secret.objects.create(name="v", backend="vault", ref="kv/llm#key")
start = time.monotonic()
values = [g.value for g in gevent.joinall([gevent.spawn(resolve, secret) for _ in range(10)])]
print(json.dumps({"seconds": time.monotonic() - start, "values": values}))
"""

POSTGRES = PATCHED + """
from django.db import connection
def one():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.5)")
        return cursor.fetchone()[0]
start = time.monotonic()
pids = [g.value for g in gevent.joinall([gevent.spawn(one) for _ in range(8)])]
print(json.dumps({"seconds": time.monotonic() - start, "pids": pids}))
"""


def run_patched(script: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MCPD_", "DATABASE_URL", "VAULT_"))}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "mcpd.settings", **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_vault_reads_wait_together_under_gevent(tmp_path):
    with FakeUpstream() as vault:
        vault.vault["kv/llm"] = {"key": "sk-from-vault"}
        vault.vault_delay = 0.5
        found = run_patched(VAULT, MCPD_DATA_DIR=str(tmp_path / "var"), VAULT_ADDR=vault.url,
                            VAULT_TOKEN=vault.vault_token)
    assert found["values"] == ["sk-from-vault"] * 10
    assert found["seconds"] < 2.5  # ten half-second reads at once, not one after another (5 s)


def test_postgresql_queries_wait_together_each_on_its_own_connection(tmp_path, small_postgres):
    found = run_patched(POSTGRES, MCPD_DATA_DIR=str(tmp_path / "var"), DATABASE_URL=small_postgres)
    assert len(set(found["pids"])) == 8  # no connection shared between greenlets
    assert found["seconds"] < 2.0  # eight half-second queries at once (4 s one after another)
