"""Secret backends behind one interface: resolve(secret) -> plaintext, or SecretUnavailable.

Messages name the secret and the cause, never a value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from secrets_app import crypto
from secrets_app.models import Backend, Secret


class SecretUnavailable(Exception):
    """A secret could not be resolved; the message names the secret and the cause."""

    def __init__(self, secret: Secret, cause: str):
        super().__init__(f"secret '{secret.name}' ({secret.backend}) could not be resolved: {cause}")
        self.secret_name = secret.name


class SecretBackend(Protocol):
    def resolve(self, secret: Secret) -> str: ...


class DbBackend:
    """Value stored in the database, Fernet-encrypted."""

    @sensitive_variables()
    def resolve(self, secret: Secret) -> str:
        if not secret.encrypted_value:
            raise SecretUnavailable(secret, "no value has been set")
        try:
            return crypto.decrypt(secret.encrypted_value)
        except crypto.InvalidToken:
            raise SecretUnavailable(secret, "no configured encryption key decrypts it") from None


class EnvBackend:
    """Value read from an environment variable of the server process."""

    @sensitive_variables()
    def resolve(self, secret: Secret) -> str:
        value = os.environ.get(secret.ref)
        if not value:
            raise SecretUnavailable(secret, f"environment variable {secret.ref} is not set or empty")
        return value


class FileBackend:
    """Value read from a file (e.g. a mounted Kubernetes or Docker secret); trailing newline stripped."""

    @sensitive_variables()
    def resolve(self, secret: Secret) -> str:
        try:
            value = Path(secret.ref).read_text().rstrip("\r\n")
        except OSError as exc:
            raise SecretUnavailable(secret, f"file {secret.ref} cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise SecretUnavailable(secret, f"file {secret.ref} is not UTF-8 text") from None
        if not value:
            raise SecretUnavailable(secret, f"file {secret.ref} is empty")
        return value


class VaultBackend:
    """HashiCorp Vault / OpenBao KV v2: ref = mount/path#field, read with VAULT_ADDR and VAULT_TOKEN."""

    timeout = (5, 10)

    @sensitive_variables()
    def resolve(self, secret: Secret) -> str:
        if not settings.VAULT_ADDR or not settings.VAULT_TOKEN:
            raise SecretUnavailable(secret, "VAULT_ADDR and VAULT_TOKEN must be set")
        mount, path, field = split_vault_ref(secret.ref)
        url = f"{settings.VAULT_ADDR.rstrip('/')}/v1/{quote(mount)}/data/{quote(path)}"
        try:
            # No redirects: requests would re-send X-Vault-Token to whatever host Location names.
            response = requests.get(url, headers={"X-Vault-Token": settings.VAULT_TOKEN}, timeout=self.timeout,
                                    allow_redirects=False)
        except requests.RequestException as exc:
            raise SecretUnavailable(secret, f"vault unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise SecretUnavailable(secret, f"vault answered {response.status_code} for {mount}/{path}")
        try:
            data = response.json()["data"]["data"]
        except (ValueError, KeyError, TypeError):
            raise SecretUnavailable(secret, "vault reply is not a KV v2 secret") from None
        return _pick_field(secret, data, field)


def split_vault_ref(ref: str) -> tuple[str, str, str | None]:
    """'mount/some/path#field' -> ('mount', 'some/path', 'field')."""
    location, _, field = ref.partition("#")
    mount, _, path = location.partition("/")
    return mount, path, field or None


@sensitive_variables()
def _pick_field(secret: Secret, data: object, field: str | None) -> str:
    if not isinstance(data, dict) or not data:
        raise SecretUnavailable(secret, "vault secret has no data (deleted or destroyed version?)")
    if field is None:
        if len(data) != 1:
            raise SecretUnavailable(secret, "vault secret has several fields: name one with #field")
        field = next(iter(data))
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise SecretUnavailable(secret, f"vault secret has no non-empty string field '{field}'")
    return value


BACKENDS: dict[str, SecretBackend] = {
    Backend.DB: DbBackend(),
    Backend.ENV: EnvBackend(),
    Backend.FILE: FileBackend(),
    Backend.VAULT: VaultBackend(),
}


@sensitive_variables()
def resolve(secret: Secret) -> str:
    """The plaintext of a secret, resolved now through its backend; raises SecretUnavailable.

    The value goes into an HTTP header: control characters (a CR/LF would inject headers) and
    non-ASCII text (headers are Latin-1 at best) are refused here, as a clear failure of the secret.
    """
    value = BACKENDS[secret.backend].resolve(secret)
    if not (value.isascii() and value.isprintable()):
        raise SecretUnavailable(secret, "the value holds control or non-ASCII characters, which cannot be sent "
                                        "in an HTTP header")
    return value
