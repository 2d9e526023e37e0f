"""Short-lived per-process memory of what every inference call would otherwise ask the database.

A call needs its token and user, whether that user may run the Llm it names, and the Llm's resolved
key: four lookups that change rarely. Each is kept for MCPD_AUTH_CACHE_SECONDS (default 5; 0
disables), so in the steady state a call makes no query before the upstream request. The bound is
the price: a revoked token, a withdrawn grant or a changed Llm takes effect within that many
seconds on every other worker and host, and at once in the process that made the change (every
save or delete of a token, user, group, permission, grant, Llm, deployment, fallback, limit or secret
forgets everything here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.conf import settings

T = TypeVar("T")
MAX_ENTRIES = 10_000  # per memo; when full it starts again empty

_memos: list[TtlMemo] = []
_generation = 0  # bumped by forget_everything(): a load that began before a change is not kept


class _Refusal:
    """A remembered refusal: raised again as a fresh exception of the same kind and message."""

    __slots__ = ("kind", "message")

    def __init__(self, error: Exception):
        self.kind, self.message = type(error), str(error)


class TtlMemo:
    """key -> the value load() returned (or the refusal it raised, for `remember` exception types)."""

    def __init__(self, remember: tuple[type[Exception], ...] = ()):
        self._remember = remember
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        _memos.append(self)

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The remembered value of `key`, or load()'s (kept for the configured seconds)."""
        seconds = settings.AUTH_CACHE_SECONDS
        if seconds <= 0:
            return load()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            generation = _generation
            entry = (now + seconds, self._load(load))
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            if generation == _generation:  # nothing changed while it loaded
                self._entries[key] = entry
        value = entry[1]
        if isinstance(value, _Refusal):
            raise value.kind(value.message)
        return value

    def _load(self, load: Callable[[], T]) -> T | _Refusal:
        try:
            return load()
        except self._remember as error:
            return _Refusal(error)

    def clear(self) -> None:
        self._entries.clear()


def forget_everything(**_: Any) -> None:
    """Forget every memo of this process (a signal receiver: something they remember changed)."""
    global _generation
    _generation += 1
    for memo in _memos:
        memo.clear()


def connect_invalidation() -> None:
    """Forget everything whenever what the memos hold changes in this process (McpdConfig.ready)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.db.models.signals import m2m_changed, post_delete, post_save

    user = get_user_model()
    models = [user, apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"),
              apps.get_model("mcpd", "ApiToken"), apps.get_model("llms", "Llm"),
              apps.get_model("llms", "LlmUserObjectPermission"), apps.get_model("llms", "LlmGroupObjectPermission"),
              apps.get_model("secrets_app", "Secret"), apps.get_model("limits", "Limit"),
              apps.get_model("llms", "Deployment"), apps.get_model("llms", "Fallback")]
    for model in models:
        post_save.connect(forget_everything, sender=model, weak=False, dispatch_uid=f"memo-save-{model.__name__}")
        post_delete.connect(forget_everything, sender=model, weak=False, dispatch_uid=f"memo-del-{model.__name__}")
    for through in (user.groups.through, user.user_permissions.through,
                    apps.get_model("auth", "Group").permissions.through):
        m2m_changed.connect(forget_everything, sender=through, weak=False, dispatch_uid=f"memo-m2m-{through.__name__}")
