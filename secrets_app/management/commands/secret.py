"""manage.py secret set|list|rotate — secrets are set here, and their values never shown again."""

from __future__ import annotations

import sys

from django.core.exceptions import ValidationError
from django.db import transaction

from mcpd.commands import SubcommandCommand
from secrets_app import crypto
from secrets_app.models import Backend, Secret


class Command(SubcommandCommand):
    help = "Manage secrets (provider API keys). Values are read from standard input, never the command line."
    subcommands = {
        "set": "Create or update a secret. For --backend db the value is read with --stdin.",
        "list": "List secrets: name, backend, ref and whether a value is set (never the value).",
        "rotate": "Re-encrypt every db secret with the first key of MCPD_ENCRYPTION_KEYS.",
    }

    def add_set_arguments(self, parser) -> None:
        parser.add_argument("name", help="the secret's name (a slug)")
        parser.add_argument("--backend", required=True, choices=[b.value for b in Backend])
        parser.add_argument("--ref", default="", help="env: variable name; file: path; vault: mount/path#field")
        parser.add_argument("--stdin", action="store_true", help="read the value (db backend) from standard input")
        parser.add_argument("--description", default="")

    def handle_set(self, *, name: str, backend: str, ref: str, stdin: bool, description: str, **_) -> None:
        secret = Secret.objects.filter(name=name).first() or Secret(name=name)
        created = secret.pk is None
        secret.backend, secret.ref = backend, ref
        if description:
            secret.description = description
        if backend == Backend.DB:
            if stdin:
                value = sys.stdin.read().rstrip("\r\n")
                if not value.strip():
                    self.fail("No value on standard input.")
                secret.set_value(value)
            elif not secret.has_value:
                self.fail("A db secret needs a value: pipe it in with --stdin.")
        else:
            if stdin:
                self.fail(f"A {backend} secret keeps no value in mcpd: give --ref instead of --stdin.")
            secret.encrypted_value = ""
        try:
            secret.full_clean()
        except ValidationError as exc:
            self.fail("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        secret.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} secret '{name}' ({backend}).")

    def handle_list(self, **_) -> None:
        secrets = list(Secret.objects.all())
        for secret in secrets:
            state = ("value set" if secret.has_value else "NO VALUE") if secret.backend == Backend.DB else secret.ref
            self.stdout.write(f"{secret.name}\t{secret.backend}\t{state}")
        self.stdout.write(f"{len(secrets)} secret(s).")

    def handle_rotate(self, **_) -> None:
        count = 0
        with transaction.atomic():
            for secret in Secret.objects.select_for_update().filter(backend=Backend.DB).exclude(encrypted_value=""):
                try:
                    secret.encrypted_value = crypto.rotate(secret.encrypted_value)
                except crypto.InvalidToken:
                    self.fail(f"Secret '{secret.name}' cannot be decrypted with any configured key; nothing changed.")
                secret.save(update_fields=["encrypted_value", "updated_at"])
                count += 1
        self.stdout.write(f"Re-encrypted {count} secret(s) with the first key.")
