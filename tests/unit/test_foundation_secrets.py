"""Secret backends, their failures, encryption at rest, key rotation and the admin form."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import call_command

from secrets_app.backends import SecretUnavailable, resolve
from secrets_app.forms import SecretForm
from secrets_app.models import Secret
from tests.fakes.upstream import FakeUpstream, connection_refused_url

BASE_DIR = Path(__file__).resolve().parents[2]
VALUE = "sk-live-VERY-SECRET-value-42"
VAULT_TOKEN = "test-vault-token"


def db_secret(value: str = VALUE, name: str = "k") -> Secret:
    secret = Secret(name=name, backend="db")
    secret.set_value(value)
    return secret


def unavailable(secret: Secret) -> str:
    """The message of the SecretUnavailable that resolving raises; it must name the secret, not the value."""
    with pytest.raises(SecretUnavailable) as caught:
        resolve(secret)
    message = str(caught.value)
    assert secret.name in message
    assert VALUE not in message and VALUE not in repr(caught.value)
    assert caught.value.secret_name == secret.name
    return message


@pytest.fixture
def vault(fake_upstream: FakeUpstream, settings) -> FakeUpstream:
    settings.VAULT_ADDR, settings.VAULT_TOKEN = fake_upstream.url, VAULT_TOKEN
    fake_upstream.vault_token = VAULT_TOKEN
    return fake_upstream


# --- each backend resolves


def test_the_db_backend_decrypts_the_stored_value():
    secret = db_secret()
    assert VALUE not in secret.encrypted_value
    assert resolve(secret) == VALUE


def test_the_env_backend_reads_the_variable(monkeypatch):
    monkeypatch.setenv("MCPD_TEST_KEY", VALUE)
    assert resolve(Secret(name="k", backend="env", ref="MCPD_TEST_KEY")) == VALUE


def test_the_file_backend_strips_the_trailing_newline(tmp_path):
    path = tmp_path / "key"
    path.write_text(VALUE + "\n")
    assert resolve(Secret(name="k", backend="file", ref=str(path))) == VALUE


def test_the_vault_backend_reads_the_named_field(vault):
    vault.vault["kv/team/openai"] = {"api_key": VALUE, "other": "x"}
    assert resolve(Secret(name="k", backend="vault", ref="kv/team/openai#api_key")) == VALUE
    sent = vault.requests[-1]
    assert sent.method == "GET" and sent.path == "/v1/kv/data/team/openai"
    assert sent.headers["X-Vault-Token"] == VAULT_TOKEN


def test_the_vault_backend_takes_the_only_field_when_none_is_named(vault):
    vault.vault["kv/openai"] = {"key": VALUE}
    assert resolve(Secret(name="k", backend="vault", ref="kv/openai")) == VALUE


# --- each failure raises SecretUnavailable naming the secret and the cause, never the value


def test_it_refuses_a_db_secret_without_a_value():
    assert "no value" in unavailable(Secret(name="k", backend="db"))


def test_it_refuses_a_db_secret_encrypted_under_a_key_no_longer_configured(settings):
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    secret = db_secret()
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert "encryption key" in unavailable(secret)


def test_it_refuses_an_unset_env_variable(monkeypatch):
    monkeypatch.delenv("MCPD_TEST_MISSING", raising=False)
    assert "MCPD_TEST_MISSING" in unavailable(Secret(name="k", backend="env", ref="MCPD_TEST_MISSING"))


def test_it_refuses_a_missing_file(tmp_path):
    path = tmp_path / "absent"
    message = unavailable(Secret(name="k", backend="file", ref=str(path)))
    assert str(path) in message and "cannot be read" in message


def test_it_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_text("\n")
    assert "empty" in unavailable(Secret(name="k", backend="file", ref=str(path)))


def test_it_refuses_vault_without_an_address(settings):
    settings.VAULT_ADDR, settings.VAULT_TOKEN = "", VAULT_TOKEN
    assert "VAULT_ADDR" in unavailable(Secret(name="k", backend="vault", ref="kv/openai#key"))


def test_it_refuses_vault_answering_403_to_a_wrong_token(vault, settings):
    vault.vault["kv/openai"] = {"key": VALUE}
    settings.VAULT_TOKEN = "wrong-token"
    message = unavailable(Secret(name="k", backend="vault", ref="kv/openai#key"))
    assert "403" in message and "kv/openai" in message
    assert "wrong-token" not in message


def test_it_refuses_a_vault_path_that_does_not_exist(vault):
    message = unavailable(Secret(name="k", backend="vault", ref="kv/absent#key"))
    assert "404" in message and "kv/absent" in message


def test_it_refuses_an_unreachable_vault(settings):
    settings.VAULT_ADDR, settings.VAULT_TOKEN = connection_refused_url(), VAULT_TOKEN
    assert "unreachable" in unavailable(Secret(name="k", backend="vault", ref="kv/openai#key"))


def test_it_refuses_a_vault_secret_with_several_fields_and_none_named(vault):
    vault.vault["kv/openai"] = {"key": VALUE, "org": "acme"}
    assert "#field" in unavailable(Secret(name="k", backend="vault", ref="kv/openai"))


def test_it_refuses_a_vault_field_that_is_absent(vault):
    vault.vault["kv/openai"] = {"key": VALUE}
    assert "'nope'" in unavailable(Secret(name="k", backend="vault", ref="kv/openai#nope"))


# --- the value is never shown


def test_str_and_repr_never_show_the_value():
    secret = db_secret()
    for shown in (str(secret), repr(secret)):
        assert VALUE not in shown
        assert secret.encrypted_value not in shown
        assert "k" in shown and "db" in shown


# --- Secret.clean, per backend


@pytest.mark.parametrize(("backend", "ref"), [
    ("db", ""),
    ("env", "OPENAI_API_KEY"),
    ("file", "/run/secrets/openai"),
    ("vault", "kv/team/openai#api_key"),
    ("vault", "secret/openai"),
])
def test_clean_accepts_a_ref_that_fits_the_backend(backend, ref):
    Secret(name="k", backend=backend, ref=ref).clean()


@pytest.mark.parametrize(("backend", "ref"), [
    ("db", "something"),
    ("env", ""),
    ("env", "NOT A NAME"),
    ("env", "1ABC"),
    ("file", ""),
    ("file", "relative/path"),
    ("vault", ""),
    ("vault", "no-mount"),
    ("vault", "kv/path#bad field"),
])
def test_clean_refuses_a_ref_that_does_not_fit_the_backend(backend, ref):
    with pytest.raises(ValidationError) as caught:
        Secret(name="k", backend=backend, ref=ref).clean()
    assert "ref" in caught.value.message_dict


# --- encryption at rest, in a real database file


def test_a_db_secret_is_encrypted_at_rest(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MCPD_ENCRYPTION_KEYS"}}
    env["MCPD_DATA_DIR"] = str(tmp_path)
    manage = [sys.executable, str(BASE_DIR / "manage.py")]

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([*manage, *args], input=stdin, env=env, cwd=BASE_DIR, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    run("migrate", "--no-input", "-v0")
    done = run("secret", "set", "k", "--backend", "db", "--stdin", stdin=VALUE + "\n")
    assert VALUE not in done.stdout + done.stderr

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "mcpd.sqlite3" for p in files)
    for path in files:  # the database, its -wal/-shm if any, the generated keys
        assert VALUE.encode() not in path.read_bytes(), path

    with sqlite3.connect(tmp_path / "mcpd.sqlite3") as db:
        rows = db.execute("SELECT backend, encrypted_value FROM secrets_app_secret WHERE name = 'k'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "db" and rows[0][1]


# --- key rotation


@pytest.mark.django_db
def test_rotate_re_encrypts_under_the_first_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    db_secret().save()

    settings.ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("secret", "rotate", stdout=out)
    assert "Re-encrypted 1 secret(s)" in out.getvalue()

    settings.ENCRYPTION_KEYS = [new]
    assert resolve(Secret.objects.get(name="k")) == VALUE
    settings.ENCRYPTION_KEYS = [old]
    with pytest.raises(SecretUnavailable):
        resolve(Secret.objects.get(name="k"))


# --- the admin form


@pytest.mark.django_db
def test_the_form_refuses_a_new_db_secret_without_a_value():
    form = SecretForm(data={"name": "k", "backend": "db", "ref": "", "description": "", "value": ""})
    assert not form.is_valid()
    assert "value" in form.errors


@pytest.mark.django_db
def test_the_form_stores_a_new_db_secret_encrypted():
    form = SecretForm(data={"name": "k", "backend": "db", "ref": "", "description": "", "value": VALUE})
    assert form.is_valid(), form.errors
    secret = form.save()
    assert VALUE not in secret.encrypted_value
    assert resolve(Secret.objects.get(pk=secret.pk)) == VALUE


@pytest.mark.django_db
def test_the_form_keeps_the_value_when_left_blank_on_edit():
    secret = db_secret()
    secret.save()
    form = SecretForm(instance=secret, data={"name": "k", "backend": "db", "ref": "", "description": "new",
                                             "value": ""})
    assert form.is_valid(), form.errors
    form.save()
    stored = Secret.objects.get(pk=secret.pk)
    assert stored.description == "new"
    assert resolve(stored) == VALUE


@pytest.mark.django_db
def test_the_form_never_renders_the_value():
    secret = db_secret()
    secret.save()
    html = str(SecretForm(instance=secret))
    assert VALUE not in html and secret.encrypted_value not in html


@pytest.mark.django_db
def test_the_form_refuses_a_value_for_an_env_secret():
    form = SecretForm(data={"name": "k", "backend": "env", "ref": "OPENAI_API_KEY", "description": "",
                            "value": VALUE})
    assert not form.is_valid()
    assert "value" in form.errors
    assert VALUE not in str(form.errors)
