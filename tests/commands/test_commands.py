"""Every operator command and subcommand: rows, output, refusals (CommandError) and change audit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from llms.models import Llm
from llms.permissions import can_run, may_run_every
from mcpd.auth import authenticate_bearer
from mcpd.models import ApiToken, digest
from secrets_app.backends import resolve
from secrets_app.models import Secret

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]
VALUE = "sk-cmd-TOP-SECRET-0123456789"


@pytest.fixture
def stdin(monkeypatch):
    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return feed


def run(*args: str) -> str:
    """call_command, returning what it printed."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def refused(*args: str, match: str) -> None:
    with pytest.raises(CommandError, match=match):
        run(*args)


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def event(kind: str) -> AuditEvent:
    return AuditEvent.objects.filter(kind=kind).latest("id")


def audit_dump() -> str:
    return "\n".join(str(row) for row in AuditEvent.objects.values())


# --- secret set


def test_secret_set_db_reads_the_value_from_stdin(stdin):
    stdin(VALUE + "\n")
    out = run("secret", "set", "openai", "--backend", "db", "--stdin")
    assert "Created secret 'openai'" in out and VALUE not in out
    secret = Secret.objects.get(name="openai")
    assert VALUE not in secret.encrypted_value
    assert resolve(secret) == VALUE


def test_secret_set_env(monkeypatch):
    monkeypatch.setenv("MCPD_CMD_KEY", VALUE)
    run("secret", "set", "from-env", "--backend", "env", "--ref", "MCPD_CMD_KEY")
    secret = Secret.objects.get(name="from-env")
    assert (secret.backend, secret.ref, secret.encrypted_value) == ("env", "MCPD_CMD_KEY", "")
    assert resolve(secret) == VALUE


def test_secret_set_file(tmp_path):
    path = tmp_path / "key"
    path.write_text(VALUE + "\n")
    run("secret", "set", "from-file", "--backend", "file", "--ref", str(path))
    assert resolve(Secret.objects.get(name="from-file")) == VALUE


def test_secret_set_vault():
    run("secret", "set", "from-vault", "--backend", "vault", "--ref", "kv/team/openai#api_key")
    secret = Secret.objects.get(name="from-vault")
    assert (secret.backend, secret.ref) == ("vault", "kv/team/openai#api_key")


def test_secret_set_updates_an_existing_secret(stdin):
    stdin("first-value\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    stdin(VALUE + "\n")
    out = run("secret", "set", "openai", "--backend", "db", "--stdin")
    assert "Updated secret 'openai'" in out
    assert Secret.objects.filter(name="openai").count() == 1
    assert resolve(Secret.objects.get(name="openai")) == VALUE


def test_secret_set_db_without_stdin_keeps_an_existing_value(stdin):
    stdin(VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    run("secret", "set", "openai", "--backend", "db", "--description", "the key")
    secret = Secret.objects.get(name="openai")
    assert secret.description == "the key" and resolve(secret) == VALUE


def test_secret_set_moving_off_db_drops_the_stored_value(stdin):
    stdin(VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    run("secret", "set", "openai", "--backend", "env", "--ref", "OPENAI_API_KEY")
    assert Secret.objects.get(name="openai").encrypted_value == ""


def test_secret_set_refuses_a_new_db_secret_without_stdin():
    refused("secret", "set", "openai", "--backend", "db", match="--stdin")
    assert not Secret.objects.exists()


def test_secret_set_refuses_an_empty_stdin(stdin):
    stdin("\n")
    refused("secret", "set", "openai", "--backend", "db", "--stdin", match="No value")
    assert not Secret.objects.exists()


def test_secret_set_refuses_stdin_for_a_backend_that_keeps_no_value(stdin):
    stdin(VALUE)
    refused("secret", "set", "k", "--backend", "env", "--ref", "X", "--stdin", match="keeps no value")


@pytest.mark.parametrize(("backend", "ref", "match"), [
    ("env", "NOT A NAME", "environment variable name"),
    ("env", "", "needs a ref"),
    ("file", "relative/path", "absolute path"),
    ("vault", "no-mount", "mount/path#field"),
])
def test_secret_set_refuses_an_invalid_ref(backend, ref, match):
    refused("secret", "set", "k", "--backend", backend, "--ref", ref, match=match)
    assert not Secret.objects.exists()


def test_secret_set_refuses_an_invalid_name():
    refused("secret", "set", "not a slug", "--backend", "env", "--ref", "X", match="name")


def test_secret_list_never_prints_a_value(stdin):
    stdin(VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    run("secret", "set", "from-env", "--backend", "env", "--ref", "MCPD_CMD_KEY")
    Secret.objects.create(name="empty", backend="db")
    out = run("secret", "list")
    lines = out.splitlines()
    assert "openai\tdb\tvalue set" in lines
    assert "from-env\tenv\tMCPD_CMD_KEY" in lines
    assert "empty\tdb\tNO VALUE" in lines
    assert "3 secret(s)." in lines
    assert VALUE not in out and Secret.objects.get(name="openai").encrypted_value not in out


def test_secret_rotate_re_encrypts_every_db_secret(settings, stdin):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    stdin(VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    before = Secret.objects.get(name="openai").encrypted_value
    settings.ENCRYPTION_KEYS = [new, old]
    assert "Re-encrypted 1 secret(s)" in run("secret", "rotate")
    settings.ENCRYPTION_KEYS = [new]
    secret = Secret.objects.get(name="openai")
    assert secret.encrypted_value != before and resolve(secret) == VALUE


def test_secret_rotate_refuses_a_value_no_key_opens_and_changes_nothing(settings, stdin):
    from cryptography.fernet import Fernet

    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    stdin(VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    before = Secret.objects.get(name="openai").encrypted_value
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    refused("secret", "rotate", match="openai")
    assert Secret.objects.get(name="openai").encrypted_value == before


# --- llm add / list


def test_llm_add_creates_an_entry(secret):
    out = run("llm", "add", "claude", "--provider", "anthropic", "--model", "claude-sonnet-4",
              "--secret", secret.name, "--description", "the big one")
    assert "Added Llm 'claude'" in out
    llm = Llm.objects.get(name="claude")
    assert (llm.provider, llm.model, llm.api_key_secret, llm.description, llm.enabled) == (
        "anthropic", "claude-sonnet-4", secret, "the big one", True)
    assert llm.effective_base_url == "https://api.anthropic.com/v1"


def test_llm_add_on_an_existing_name_updates_it(llm):
    out = run("llm", "add", "gpt", "--provider", "vllm", "--model", "llama-3", "--base-url", "http://gpu.internal:8000/v1")
    assert "Updated Llm 'gpt'" in out
    assert Llm.objects.count() == 1
    llm.refresh_from_db()
    assert (llm.provider, llm.model, llm.base_url) == ("vllm", "llama-3", "http://gpu.internal:8000/v1")
    assert llm.api_key_secret is not None  # not given: kept


def test_llm_add_sets_prices_per_million_tokens_and_keeps_them_when_not_given(llm):
    run("llm", "add", "gpt", "--provider", "openai", "--model", "gpt-4o", "--price-input", "2.50",
        "--price-output", "10", "--price-cache-read", "1.25", "--context-window", "128000")
    llm.refresh_from_db()
    assert (llm.price_input, llm.price_output, llm.price_cache_read, llm.price_cache_write) == (
        Decimal("2.5"), Decimal("10"), Decimal("1.25"), None)
    assert llm.context_window == 128000
    run("llm", "add", "gpt", "--provider", "openai", "--model", "gpt-4o")
    llm.refresh_from_db()
    assert llm.price_output == Decimal("10")


@pytest.mark.parametrize("value", ["cheap", "-1", "NaN", "Infinity"])
def test_llm_add_refuses_a_price_that_is_not_a_number_of_0_or_more(value):
    with pytest.raises(CommandError, match="price"):
        call_command("llm", "add", "x", "--provider", "openai", "--model", "m", "--price-input", value)
    assert not Llm.objects.filter(name="x").exists()


@pytest.mark.parametrize("url", ["http://vllm:8000/v1", "http://10.1.2.3:8000/v1", "http://[::1]:11434/v1"])
def test_llm_add_takes_bare_hosts_and_addresses(url):
    run("llm", "add", "local", "--provider", "vllm", "--model", "llama-3", "--base-url", url)
    assert Llm.objects.get(name="local").effective_base_url == url


def test_llm_add_with_an_empty_secret_removes_the_key(llm):
    run("llm", "add", "gpt", "--provider", "openai", "--model", "gpt-4o", "--secret", "")
    llm.refresh_from_db()
    assert llm.api_key_secret is None


def test_llm_add_refuses_vllm_without_a_base_url():
    refused("llm", "add", "local", "--provider", "vllm", "--model", "llama-3", match="base URL")
    assert not Llm.objects.exists()


@pytest.mark.parametrize("url", ["ftp://host/v1", "file:///etc/passwd", "not a url", "http://", "vllm:8000",
                                 "http://host:99999/v1"])
def test_llm_add_refuses_a_base_url_that_is_not_http(url):
    refused("llm", "add", "x", "--provider", "openai", "--model", "m", "--base-url", url, match="http")
    assert not Llm.objects.exists()


def test_llm_add_refuses_an_unknown_secret():
    refused("llm", "add", "x", "--provider", "openai", "--model", "m", "--secret", "nope", match="No secret named 'nope'")
    assert not Llm.objects.exists()


def test_llm_add_refuses_an_unknown_provider():
    with pytest.raises(CommandError, match="provider"):
        run("llm", "add", "x", "--provider", "acme", "--model", "m")


def test_llm_list_shows_the_catalogue_without_secrets(make_llm):
    make_llm("gpt")
    make_llm("local", provider="ollama", model="llama3", api_key_secret=None, enabled=False)
    out = run("llm", "list")
    lines = out.splitlines()
    assert "gpt\topenai\tgpt-4o-mini\thttps://api.openai.com/v1\tprovider-key\tenabled" in lines
    assert "local\tollama\tllama3\thttp://localhost:11434/v1\t-\tdisabled" in lines
    assert "2 Llm(s)." in lines
    from tests.conftest import FAKE_KEY

    assert FAKE_KEY not in out


# --- llm grant / revoke


def test_llm_grant_and_revoke_to_a_user_by_name(carol, llm, make_llm):
    other = make_llm("other")
    assert "Granted run on 'gpt' to carol" in run("llm", "grant", "gpt", "--user", "carol")
    assert can_run(fresh(carol), llm) and not can_run(fresh(carol), other)
    assert "Revoked run on 'gpt' from carol" in run("llm", "revoke", "gpt", "--user", "carol")
    assert not can_run(fresh(carol), llm)


def test_llm_grant_and_revoke_every_llm_to_a_user(carol, llm):
    assert "every Llm" in run("llm", "grant", "*", "--user", "carol")
    assert may_run_every(fresh(carol)) and can_run(fresh(carol), llm)
    run("llm", "revoke", "*", "--user", "carol")
    assert not may_run_every(fresh(carol)) and not can_run(fresh(carol), llm)


def test_llm_grant_and_revoke_to_a_group_by_name(carol, llm, make_llm):
    other = make_llm("other")
    carol.groups.add(Group.objects.create(name="team"))
    assert "group team" in run("llm", "grant", "gpt", "--group", "team")
    assert can_run(fresh(carol), llm) and not can_run(fresh(carol), other)
    run("llm", "revoke", "gpt", "--group", "team")
    assert not can_run(fresh(carol), llm)


def test_llm_grant_and_revoke_every_llm_to_a_group(carol, llm):
    carol.groups.add(Group.objects.create(name="team"))
    run("llm", "grant", "*", "--group", "team")
    assert may_run_every(fresh(carol))
    run("llm", "revoke", "*", "--group", "team")
    assert not may_run_every(fresh(carol))


@pytest.mark.parametrize(("args", "match"), [
    (["gpt", "--user", "nobody"], "No user named 'nobody'"),
    (["gpt", "--group", "nobody"], "No group named 'nobody'"),
    (["absent", "--user", "carol"], "No Llm named 'absent'"),
])
@pytest.mark.parametrize("sub", ["grant", "revoke"])
def test_llm_grant_and_revoke_refuse_unknown_names(sub, args, match, carol, llm):
    refused("llm", sub, *args, match=match)


def test_llm_grant_needs_a_user_or_a_group(llm):
    with pytest.raises(CommandError):
        run("llm", "grant", "gpt")


# --- token issue / list / revoke


def test_token_issue_prints_the_token_alone_as_the_last_line_and_it_authenticates(alice):
    out = run("token", "issue", "alice", "--name", "laptop")
    plaintext = out.rstrip("\n").splitlines()[-1]
    assert plaintext == plaintext.strip() and " " not in plaintext
    token = ApiToken.objects.get(sha256=digest(plaintext))
    assert (token.user, token.name, token.expires_at) == (alice, "laptop", None)
    user, authed = authenticate_bearer(f"Bearer {plaintext}")
    assert (user, authed) == (alice, token)


def test_token_issue_with_expires_days(alice):
    plaintext = run("token", "issue", "alice", "--expires-days", "3").splitlines()[-1]
    token = ApiToken.objects.get(sha256=digest(plaintext))
    assert abs(token.expires_at - (timezone.now() + timedelta(days=3))) < timedelta(minutes=1)


def test_token_issue_refuses_an_unknown_user(db):
    refused("token", "issue", "nobody", match="No user named 'nobody'")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("days", ["0", "-1"])
def test_token_issue_refuses_a_non_positive_expiry(alice, days):
    refused("token", "issue", "alice", "--expires-days", days, match="positive")
    assert not ApiToken.objects.exists()


def test_token_list_shows_prefixes_and_states_never_tokens(alice, bob):
    live = run("token", "issue", "alice", "--name", "live").splitlines()[-1]
    gone = run("token", "issue", "alice", "--name", "gone").splitlines()[-1]
    bobs = run("token", "issue", "bob", "--name", "bobs").splitlines()[-1]
    ApiToken.objects.filter(sha256=digest(gone)).update(revoked=True)

    out = run("token", "list")
    assert "3 token(s)." in out
    for plaintext in (live, gone, bobs):
        assert plaintext not in out and digest(plaintext) not in out
        assert plaintext[:12] + "…" in out
    rows = {line.split("\t")[2]: line.split("\t") for line in out.splitlines() if "\t" in line}
    assert rows["live"][-1] == "active" and rows["gone"][-1] == "revoked"
    assert rows["live"][5] == "never" and rows["live"][6] == "no expiry"

    only_bob = run("token", "list", "bob")
    assert "1 token(s)." in only_bob and "bobs" in only_bob and "live" not in only_bob


def test_token_revoke(alice):
    plaintext = run("token", "issue", "alice").splitlines()[-1]
    token = ApiToken.objects.get(sha256=digest(plaintext))
    assert f"Revoked token {token.pk}" in run("token", "revoke", str(token.pk))
    token.refresh_from_db()
    assert token.revoked
    assert "already revoked" in run("token", "revoke", str(token.pk))


def test_token_revoke_refuses_an_unknown_id(db):
    refused("token", "revoke", "999999", match="No token with ID 999999")


# --- audit prune


def test_audit_prune_deletes_old_rows_and_keeps_new_ones(db):
    old = AuditEvent.objects.create(kind="llm_inference_call", llm_name="old")
    new = AuditEvent.objects.create(kind="llm_inference_call", llm_name="new")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    AuditEvent.objects.filter(pk=new.pk).update(created_at=timezone.now() - timedelta(days=29))

    assert "Deleted 1 audit event(s)" in run("audit", "prune", "--older-than-days", "30")
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=new.pk).exists()
    assert event("audit.pruned").actor == "manage.py audit prune"


def test_audit_prune_deletes_in_batches_oldest_first_and_tells_its_progress(db, monkeypatch):
    from audit.management.commands import audit as audit_command

    monkeypatch.setattr(audit_command, "PRUNE_BATCH", 4)
    AuditEvent.objects.bulk_create([AuditEvent(kind="llm_inference_call", llm_name=f"old-{i}") for i in range(10)])
    AuditEvent.objects.update(created_at=timezone.now() - timedelta(days=40))
    kept = AuditEvent.objects.create(kind="llm_inference_call", llm_name="new")
    printed = run("audit", "prune", "--older-than-days", "30")
    assert [line for line in printed.splitlines() if line.startswith("deleted ")] == [
        "deleted 4 of 10 audit events (40%)", "deleted 8 of 10 audit events (80%)",
        "deleted 10 of 10 audit events (100%)"]
    assert "Deleted 10 audit event(s)" in printed
    assert list(AuditEvent.objects.filter(kind="llm_inference_call")) == [kept]


def test_audit_prune_refuses_less_than_a_day(db):
    AuditEvent.objects.create(kind="llm_inference_call")
    refused("audit", "prune", "--older-than-days", "0", match="at least 1")
    assert AuditEvent.objects.count() == 1


# --- change audit


def test_commands_leave_change_audit_rows_with_the_command_as_actor(stdin, carol):
    stdin(VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    run("llm", "add", "gpt", "--provider", "openai", "--model", "gpt-4o", "--secret", "openai")
    plaintext = run("token", "issue", "carol").splitlines()[-1]
    token = ApiToken.objects.get(sha256=digest(plaintext))
    run("token", "revoke", str(token.pk))
    run("llm", "grant", "gpt", "--user", "carol")
    run("llm", "grant", "*", "--user", "carol")
    stdin("another-" + VALUE + "\n")
    run("secret", "set", "openai", "--backend", "db", "--stdin")
    run("llm", "add", "gpt", "--provider", "openai", "--model", "gpt-4.1")
    run("llm", "revoke", "gpt", "--user", "carol")

    expected = [
        ("secret.created", "manage.py secret set", "openai"),
        ("llm.created", "manage.py llm add", "gpt"),
        ("token.issued", "manage.py token issue", plaintext[:12]),
        ("token.revoked", "manage.py token revoke", plaintext[:12]),
        ("permission.granted", "manage.py llm grant", "gpt"),
        ("secret.updated", "manage.py secret set", "openai"),
        ("llm.updated", "manage.py llm add", "gpt"),
        ("permission.revoked", "manage.py llm revoke", "gpt"),
    ]
    for kind, actor, shown in expected:
        rows = AuditEvent.objects.filter(kind=kind, actor=actor, object_repr__contains=shown)
        assert rows.exists(), (kind, actor, shown)

    every = AuditEvent.objects.filter(kind="permission.granted", detail__llm="*").get()
    assert every.actor == "manage.py llm grant" and every.detail["holder"] == "user:carol"
    one = AuditEvent.objects.filter(kind="permission.granted", detail__llm="gpt").get()
    assert one.detail["permission"] == "run_llm" and one.detail["holder"] == "user:carol"

    dump = audit_dump()
    assert VALUE not in dump
    assert Secret.objects.get(name="openai").encrypted_value not in dump
    assert plaintext not in dump


# --- the command line itself


def manage(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MCPD_DATA_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("command", "subcommands"), [
    ("secret", ["set", "list", "rotate"]),
    ("llm", ["add", "list", "grant", "revoke"]),
    ("token", ["issue", "list", "revoke"]),
    ("audit", ["prune"]),
])
def test_each_command_has_help_naming_its_subcommands(command, subcommands, tmp_path):
    done = manage(command, "--help", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    for sub in subcommands:
        assert sub in done.stdout


def test_a_subcommand_has_its_own_help(tmp_path):
    done = manage("secret", "set", "--help", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--stdin" in done.stdout and "--backend" in done.stdout


def test_a_refusal_exits_non_zero_with_the_message(tmp_path):
    done = manage("audit", "prune", "--older-than-days", "0", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "--older-than-days must be at least 1" in done.stderr
