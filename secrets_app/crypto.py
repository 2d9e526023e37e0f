"""Encryption at rest for `db` secrets: MultiFernet over MCPD_ENCRYPTION_KEYS (first encrypts, all decrypt)."""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    """The MultiFernet for the configured keys (cached per key set)."""
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    """A Fernet token (text) for the value, under the first key."""
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext for a Fernet token; raises InvalidToken when no configured key opens it."""
    return fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """The same value re-encrypted under the first key."""
    return fernet().rotate(token.encode()).decode()


__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet", "rotate"]
