"""Usage rollups survive a worker killed mid-load: the rows it had not yet written are lost together with
their sums (one transaction), so the rollups still equal the audit rows' own sums, call for call."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import running_server
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.xdist_group("e2e")

SET_UP = """
from decimal import Decimal
from django.contrib.auth.models import User
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
llm = Llm.objects.create(name="priced", provider="openai", model="m", base_url={base_url!r},
                         price_input=Decimal("3"), price_output=Decimal("15"))
Llm.objects.create(name="unpriced", provider="openai", model="m", base_url={base_url!r})
for name in ("ann", "bob"):
    user = User.objects.create_user(name)
    grant_run(user, llm); grant_run(user, Llm.objects.get(name="unpriced"))
    print("TOKEN", ApiToken.objects.issue(user)[1])
"""

# The audit rows summed as the rollups are keyed, beside the rollups themselves.
COMPARE = """
import json
from decimal import Decimal
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from audit.models import INFERENCE, AuditEvent, UsageDay
def money(value):  # SQLite sums decimals as floats: equal to a billionth
    return str(Decimal(value or 0).quantize(Decimal("1e-9")).normalize())
rows = (AuditEvent.objects.filter(kind=INFERENCE).annotate(day=TruncDate("created_at"))
        .values("day", "llm_name", "user_id", "token_sha")
        .annotate(calls=Count("id"), errors=Count("id", filter=Q(outcome="error")),
                  prompt=Coalesce(Sum("prompt_tokens"), 0), completion=Coalesce(Sum("completion_tokens"), 0),
                  spent=Sum("cost"), unpriced=Count("id", filter=Q(cost__isnull=True))))
audit = sorted([str(r["day"]), r["llm_name"], r["user_id"] or 0, r["token_sha"], r["calls"], r["errors"],
                r["prompt"], r["completion"], money(r["spent"]), r["unpriced"]] for r in rows)
rollups = sorted([str(u.day), u.llm_name, u.user_id, u.token_sha, u.calls, u.errors, u.prompt_tokens,
                  u.completion_tokens, money(u.cost), u.unpriced_calls] for u in UsageDay.objects.all())
print(json.dumps({"audit": audit, "rollups": rollups}))
"""


def workers_of(master: int) -> list[int]:
    """The gunicorn workers (children) of the master process."""
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def test_killing_a_worker_mid_load_leaves_rollups_equal_to_the_audit_rows(tmp_path_factory):
    with FakeUpstream() as fake, running_server(tmp_path_factory, env={"WEB_CONCURRENCY": "2"}) as server:
        out = server.manage("shell", "-c", SET_UP.format(base_url=f"{fake.url}/v1"))
        tokens = [line.split()[1] for line in out.splitlines() if line.startswith("TOKEN ")]
        stop, answered, broken = threading.Event(), [], []

        def load(n: int) -> None:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {tokens[n % 2]}"}
            model = ("priced", "unpriced", "missing")[n % 3]  # refused (403: no such Llm), audited and rolled up too
            while not stop.is_set():
                try:
                    answer = session.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=10,
                                          json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})
                    answered.append(answer.status_code)
                except requests.ConnectionError:
                    broken.append(n)  # the call the killed worker was serving
                    session = requests.Session()

        with ThreadPoolExecutor(12) as pool:
            for n in range(12):
                pool.submit(load, n)
            time.sleep(1.5)
            assert server.process is not None
            victim = workers_of(server.process.pid)[0]
            os.kill(victim, signal.SIGKILL)  # its writer's queue dies with it
            time.sleep(1.5)
            stop.set()
        assert len(answered) > 200 and {200, 403} <= set(answered)
        assert victim not in workers_of(server.process.pid)  # gone, and the master started another
        time.sleep(1.0)  # the living workers' writers flush
        found = json.loads(server.manage("shell", "-c", COMPARE).strip().splitlines()[-1])
    assert found["rollups"] == found["audit"]
    calls = sum(row[4] for row in found["audit"])
    # No call counted twice; the rows lost are at most what the killed worker had queued (a batch or two).
    assert 0.9 * len(answered) <= calls <= len(answered) + len(broken), (calls, len(answered), len(broken))
    assert {row[1] for row in found["audit"]} == {"priced", "unpriced", "missing"}
