"""Secret: a named reference to a credential that resolves server-side through a backend."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models

from secrets_app import crypto

VAULT_REF = re.compile(r"^[\w.-]+/[\w./-]+(#[\w.-]+)?$")


class Backend(models.TextChoices):
    DB = "db", "Encrypted in the database"
    ENV = "env", "Environment variable"
    FILE = "file", "File"
    VAULT = "vault", "Vault / OpenBao KV v2"


class Secret(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.DB)
    ref = models.CharField(
        max_length=500,
        blank=True,
        help_text="env: variable name; file: absolute path; vault: mount/path#field. Empty for db.",
    )
    encrypted_value = models.TextField(blank=True, editable=False)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.backend})"

    def __repr__(self) -> str:
        return f"<Secret {self.name} backend={self.backend}>"

    @property
    def has_value(self) -> bool:
        """Whether a db secret holds a value (never the value itself)."""
        return bool(self.encrypted_value)

    def set_value(self, plaintext: str) -> None:
        """Encrypt and keep a value for the db backend (saved by the caller)."""
        self.encrypted_value = crypto.encrypt(plaintext)

    def clean(self) -> None:
        """Backend-aware validation of ref (the value itself is checked by forms and commands)."""
        self.ref = self.ref.strip()
        if self.backend == Backend.DB:
            if self.ref:
                raise ValidationError({"ref": "A db secret has no ref: its value is stored encrypted."})
        elif not self.ref:
            raise ValidationError({"ref": f"A {self.backend} secret needs a ref."})
        elif self.backend == Backend.FILE and not self.ref.startswith("/"):
            raise ValidationError({"ref": "A file secret's ref is an absolute path."})
        elif self.backend == Backend.ENV and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.ref):
            raise ValidationError({"ref": "An env secret's ref is an environment variable name."})
        elif self.backend == Backend.VAULT and not VAULT_REF.match(self.ref):
            raise ValidationError({"ref": "A vault secret's ref is mount/path#field (KV v2)."})
