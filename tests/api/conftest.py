from __future__ import annotations

import os
from functools import cache

import pytest

from llms.models import Llm


@pytest.fixture
def upstream_llm(llm, fake_upstream) -> Llm:
    """The `gpt` Llm pointed at the loopback fake provider."""
    llm.base_url = fake_upstream.url + "/v1"
    llm.save()
    return llm


@cache
def _redis_store(url: str):
    from limits.redis_store import PREFIX, RedisStore

    return RedisStore(url, prefix=f"{PREFIX}test:{os.environ.get('PYTEST_XDIST_WORKER', 'main')}:")


@pytest.fixture(autouse=True)
def _redis_counters(monkeypatch):
    """With REDIS_URL set (tests/run.sh's Redis pass), calls are counted in that Redis: under a prefix of
    this test worker's own (every worker's database numbers its Limits from 1), emptied before each test,
    as each test's database starts empty."""
    from django.conf import settings

    if settings.REDIS_URL:
        from limits import admission
        from tests.api.counters import RedisCounts

        store = _redis_store(settings.REDIS_URL)
        RedisCounts(store).clear()
        monkeypatch.setattr(admission, "counters", lambda: store)


@pytest.fixture
def counts():
    """The counters of the store calls are counted in (tests/api/counters.py)."""
    from limits import admission
    from tests.api.counters import counts_of

    return counts_of(admission.counters())


@pytest.fixture
def audit_rows():
    from audit.models import INFERENCE, AuditEvent

    return lambda: list(AuditEvent.objects.filter(kind=INFERENCE).order_by("id"))


@pytest.fixture
def behind_proxy(settings):
    """mcpd behind one proxy that appends to X-Forwarded-For (MCPD_BEHIND_PROXY=true)."""
    settings.TRUSTED_PROXY_HOPS = 1
    return settings


class Clock:
    """The throttle's clock, moved by hand; starts at the start of a 15-minute (and a 1-minute) window."""

    def __init__(self) -> None:
        self.time = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from mcpd import throttle

    clock = Clock()
    monkeypatch.setattr(throttle, "now", lambda: clock.time)
    return clock
