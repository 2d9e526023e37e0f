from __future__ import annotations

import pytest

from llms.models import Llm


@pytest.fixture
def upstream_llm(llm, fake_upstream) -> Llm:
    """The `gpt` Llm pointed at the loopback fake provider."""
    llm.base_url = fake_upstream.url + "/v1"
    llm.save()
    return llm


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
