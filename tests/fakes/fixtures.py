"""pytest fixtures for the loopback fake upstream (tests/fakes/upstream.py).

Register with ``pytest_plugins = ["tests.fakes.fixtures"]`` (root conftest or a test module).

Only a function-scoped server: starting and stopping one costs a few milliseconds, so every test
gets a fresh port, an empty reply queue and untouched stream events; a shared session server would
save nothing measurable and could leak a hanging stream or a kept-alive connection into the next test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.upstream import FakeUpstream


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started FakeUpstream on 127.0.0.1 (``fake_upstream.url + "/v1"`` is the base URL); stopped after."""
    with FakeUpstream() as fake:
        yield fake
