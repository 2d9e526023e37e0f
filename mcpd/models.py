"""API tokens: stored as a SHA-256 digest only; the plaintext exists once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "mcpd_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one last_used write per token a minute
TRACKED_FIELDS = ("name", "expires_at", "revoked")  # as loaded, to say what an edit changed
UNREVOKE_REFUSED = "A revoked token stays revoked: issue a new token instead."


def digest(token: str) -> str:
    """Hex SHA-256 of a token: what is stored, and what audit rows carry."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def issue(self, user, name: str = "", expires_at=None) -> tuple[ApiToken, str]:
        """Create a token for the user; returns the row and the plaintext (shown once)."""
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = self.create(
            user=user, name=name, sha256=digest(plaintext), prefix=plaintext[:12], expires_at=expires_at
        )
        return token, plaintext


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    sha256 = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="The first characters, to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'}, {self.user})"

    # What was loaded (or last saved) is kept on the instance, so that an edit can be checked and
    # audited without reading the row again.
    @classmethod
    def from_db(cls, db, field_names, values):
        token = super().from_db(db, field_names, values)
        token._remember(TRACKED_FIELDS)
        return token

    def _remember(self, fields) -> None:
        loaded = self.__dict__.setdefault("_loaded", {})
        loaded.update({f: self.__dict__[f] for f in fields if f in self.__dict__})

    def loaded(self, field: str, default: Any = None) -> Any:
        """The value `field` had when the token was loaded or last saved (`default` if unknown)."""
        return self.__dict__.get("_loaded", {}).get(field, default)

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """The tracked fields edited since loading or the last save: {field: (old, new)}."""
        loaded = self.__dict__.get("_loaded", {})
        return {f: (old, self.__dict__[f]) for f, old in loaded.items()
                if f in self.__dict__ and self.__dict__[f] != old}

    def save(self, *args, **kwargs) -> None:
        # Revocation is one-way for everyone: the backstop below the admin (touch() and other
        # queryset updates do not come here).
        if self.loaded("revoked", False) and not self.revoked:
            raise ValueError(UNREVOKE_REFUSED)
        super().save(*args, **kwargs)
        self._remember(kwargs.get("update_fields") or TRACKED_FIELDS)

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        self._remember(fields or TRACKED_FIELDS)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.revoked and not self.is_expired

    def touch(self) -> None:
        """Record use, writing at most once per LAST_USED_RESOLUTION (a write per call would cost every call)."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION:
            from audit import (
                writer,  # in a server, written later with the audit rows: no query before the call
            )

            if not writer.touch(self.pk, now):
                type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class ThrottleCounter(models.Model):
    """How many events (failed logins, 401s…) one key had in one scope during one fixed window.

    Written only by mcpd.throttle, with one atomic upsert per event; rows of ended windows are deleted.
    """

    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key", "window_start"],
                                               name="mcpd_throttle_one_row_per_window")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.count} until {self.window_end:%Y-%m-%d %H:%M:%S}"
