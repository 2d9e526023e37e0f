"""Who is acting right now, for change audit rows: set per request by middleware, per command by commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# A callable so the request's lazily authenticated user is read only when a change is recorded.
_actor: ContextVar[Callable[[], tuple[Any, str]] | None] = ContextVar("audit_actor", default=None)


def current_actor() -> tuple[Any, str]:
    """(user or None, label) of whoever is making changes now; ('system') when nobody is known."""
    getter = _actor.get()
    return getter() if getter else (None, "system")


@contextmanager
def acting_as(getter: Callable[[], tuple[Any, str]]) -> Iterator[None]:
    """Attribute the changes made inside the block to the actor the getter returns."""
    token = _actor.set(getter)
    try:
        yield
    finally:
        _actor.reset(token)


def command_actor(label: str) -> Callable[[], tuple[Any, str]]:
    """An actor for a management command, e.g. 'manage.py llm add'."""
    return lambda: (None, label)
