"""The Django admin: pages render, secrets and tokens stay hidden, run is granted only by who may grant it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from audit.models import AuditEvent
from audit.recorder import record_change
from llms.models import Llm
from llms.permissions import can_run
from mcpd.models import ApiToken, digest
from secrets_app.models import Secret
from tests.conftest import FAKE_KEY

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"mcpd_[A-Za-z0-9_-]{20,}")



@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def other(make_llm) -> Llm:
    """An Llm nobody in the cast holds run on."""
    return make_llm("other")


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def page(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- pages render


def test_the_admin_index_renders(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    for title in ("LLMs", "Secrets", "API tokens", "Audit events"):
        assert title in page(response)


@pytest.mark.parametrize("model", ["llms/llm", "secrets_app/secret", "mcpd/apitoken", "audit/auditevent"])
def test_each_changelist_renders(model, admin_client, llm, alice, token_for):
    token_for(alice)
    assert admin_client.get(f"/admin/{model}/").status_code == 200


@pytest.mark.parametrize("model", ["llms/llm", "secrets_app/secret", "mcpd/apitoken"])
def test_each_add_page_renders(model, admin_client):
    assert admin_client.get(f"/admin/{model}/add/").status_code == 200


def test_audit_events_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/audit/auditevent/add/").status_code == 403


def test_each_change_page_renders(admin_client, llm, alice):
    token, _ = ApiToken.objects.issue(alice)
    audit = AuditEvent.objects.latest("id")  # the change audit of the fixtures
    for url in (f"/admin/llms/llm/{llm.pk}/change/",
                f"/admin/secrets_app/secret/{llm.api_key_secret_id}/change/",
                f"/admin/mcpd/apitoken/{token.pk}/change/",
                f"/admin/audit/auditevent/{audit.pk}/change/"):
        assert admin_client.get(url).status_code == 200, url


def test_an_audit_event_is_read_only_in_the_admin(admin_client, llm):
    audit = AuditEvent.objects.latest("id")
    response = admin_client.post(f"/admin/audit/auditevent/{audit.pk}/change/", {"kind": "forged"})
    assert response.status_code == 403
    audit.refresh_from_db()
    assert audit.kind != "forged"


# --- secrets


def test_the_secret_pages_never_show_the_value(admin_client, secret, llm):
    for url in ("/admin/secrets_app/secret/", f"/admin/secrets_app/secret/{secret.pk}/change/"):
        html = page(admin_client.get(url))
        assert FAKE_KEY not in html
        assert secret.encrypted_value not in html
    assert "provider-key" in html


def test_a_secret_added_through_the_admin_is_stored_encrypted(admin_client):
    response = admin_client.post("/admin/secrets_app/secret/add/", {
        "name": "anthropic", "backend": "db", "ref": "", "description": "", "value": FAKE_KEY,
    })
    assert response.status_code == 302, page(response)
    secret = Secret.objects.get(name="anthropic")
    assert secret.has_value and FAKE_KEY not in secret.encrypted_value
    html = page(admin_client.get(f"/admin/secrets_app/secret/{secret.pk}/change/"))
    assert FAKE_KEY not in html


def test_the_check_action_says_ok_for_a_secret_that_resolves(admin_client, secret):
    response = admin_client.post("/admin/secrets_app/secret/", {
        "action": "check_resolves", "_selected_action": [secret.pk],
    }, follow=True)
    assert response.status_code == 200
    assert "secret 'provider-key': ok" in messages_of(response)
    assert FAKE_KEY not in page(response)


def test_the_check_action_shows_why_a_secret_does_not_resolve(admin_client, monkeypatch):
    monkeypatch.delenv("MCPD_ADMIN_ABSENT", raising=False)
    broken = Secret.objects.create(name="broken", backend="env", ref="MCPD_ADMIN_ABSENT")
    response = admin_client.post("/admin/secrets_app/secret/", {
        "action": "check_resolves", "_selected_action": [broken.pk],
    }, follow=True)
    shown = messages_of(response)
    assert len(shown) == 1
    assert "broken" in shown[0] and "MCPD_ADMIN_ABSENT is not set" in shown[0]
    assert "MCPD_ADMIN_ABSENT is not set" in page(response)


def test_deleting_a_secret_used_by_an_llm_is_refused(admin_client, secret, llm):
    url = f"/admin/secrets_app/secret/{secret.pk}/delete/"
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert "Cannot delete secret" in page(response)
    assert "protected related objects" in page(response) and ">gpt</a>" in page(response)
    assert Secret.objects.filter(pk=secret.pk).exists()

    response = admin_client.post("/admin/secrets_app/secret/", {
        "action": "delete_selected", "_selected_action": [secret.pk], "post": "yes",
    })
    assert Secret.objects.filter(pk=secret.pk).exists()
    assert not AuditEvent.objects.filter(kind="secret.deleted").exists()


def test_deleting_an_unused_secret_works(admin_client):
    unused = Secret.objects.create(name="unused", backend="env", ref="X")
    response = admin_client.post(f"/admin/secrets_app/secret/{unused.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Secret.objects.filter(pk=unused.pk).exists()


# --- API tokens


def test_a_token_created_in_the_admin_is_shown_once_and_stored_as_a_digest(admin_client, alice):
    response = admin_client.post("/admin/mcpd/apitoken/add/", {
        "user": alice.pk, "name": "from-admin", "expires_at_0": "", "expires_at_1": "",
    })
    assert response.status_code == 200
    found = TOKEN_RE.findall(page(response))
    assert len(set(found)) == 1, page(response)
    plaintext = found[0]

    token = ApiToken.objects.get()
    assert (token.user, token.name) == (alice, "from-admin")
    assert token.sha256 == digest(plaintext)
    for column, value in ApiToken.objects.filter(pk=token.pk).values().get().items():
        assert plaintext not in str(value), column

    for url in ("/admin/mcpd/apitoken/", f"/admin/mcpd/apitoken/{token.pk}/change/"):
        html = page(admin_client.get(url))
        assert plaintext not in html
        assert token.prefix in html

    api = admin_client.__class__()
    assert api.get("/api/v1/llms/", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200


@pytest.fixture
def token_clerk(db, client):
    """Staff who may manage API tokens, and nothing else."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("erin", password="pw-erin-1234", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="mcpd"))
    client.force_login(user)
    return user


def test_token_permissions_do_not_reach_other_users_tokens(client, token_clerk, admin_user):
    """add_apitoken must not become a way to act as a superuser."""
    ApiToken.objects.issue(admin_user, name="root-laptop")
    refused = client.post("/admin/mcpd/apitoken/add/", {"user": admin_user.pk, "name": "stolen",
                                                        "expires_at_0": "", "expires_at_1": ""})
    assert refused.status_code == 200 and "Select a valid choice" in page(refused)
    assert not ApiToken.objects.filter(name="stolen").exists()
    assert "root-laptop" not in page(client.get("/admin/mcpd/apitoken/"))

    own = client.post("/admin/mcpd/apitoken/add/", {"user": token_clerk.pk, "name": "mine",
                                                    "expires_at_0": "", "expires_at_1": ""})
    assert len(set(TOKEN_RE.findall(page(own)))) == 1
    assert ApiToken.objects.get(name="mine").user == token_clerk
    assert "mine" in page(client.get("/admin/mcpd/apitoken/"))


def test_a_token_can_be_revoked_from_the_admin(admin_client, alice):
    token, _ = ApiToken.objects.issue(alice)
    response = admin_client.post("/admin/mcpd/apitoken/", {
        "action": "revoke", "_selected_action": [token.pk],
    }, follow=True)
    assert "Revoked 1 token(s)." in messages_of(response)
    token.refresh_from_db()
    assert token.revoked


# --- granting run through guardian's object-permissions pages


def test_a_superuser_grants_run_through_the_object_permissions_page(admin_client, alice, other):
    base = f"/admin/llms/llm/{other.pk}/permissions/"
    assert admin_client.get(base).status_code == 200

    response = admin_client.post(base, {"user": "alice", "submit_manage_user": "Manage user"})
    assert response.status_code == 302
    manage_user = f"{base}user-manage/{alice.pk}/"
    assert response["Location"] == manage_user
    assert admin_client.get(manage_user).status_code == 200

    assert not can_run(fresh(alice), other)
    response = admin_client.post(manage_user, {"permissions": ["run_llm"]})
    assert response.status_code == 302
    assert can_run(fresh(alice), other)

    granted = AuditEvent.objects.get(kind="permission.granted", detail__llm="other")
    assert granted.actor == "root" and granted.detail["holder"] == "user:alice"

    # A browser posts the CSRF token even with every box unticked (an empty POST would not be bound).
    admin_client.post(manage_user, {"csrfmiddlewaretoken": "unchecked-in-tests"})
    assert not can_run(fresh(alice), other)
    assert AuditEvent.objects.get(kind="permission.revoked", detail__llm="other").actor == "root"


def test_a_superuser_grants_run_to_a_group_through_the_object_permissions_page(admin_client, carol, other):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="team")
    carol.groups.add(group)
    base = f"/admin/llms/llm/{other.pk}/permissions/"
    response = admin_client.post(base, {"group": "team", "submit_manage_group": "Manage group"})
    assert response["Location"] == f"{base}group-manage/{group.pk}/"
    admin_client.post(response["Location"], {"permissions": ["run_llm"]})
    assert can_run(fresh(carol), other)


def test_change_llm_does_not_lead_to_run_through_the_admin(client, bob, llm):
    client.force_login(bob)
    assert client.get(f"/admin/llms/llm/{llm.pk}/change/").status_code == 200  # bob may edit it
    base = f"/admin/llms/llm/{llm.pk}/permissions/"
    assert client.get(base).status_code == 403
    assert client.post(base, {"user": "bob", "submit_manage_user": "Manage user"}).status_code == 403
    manage_self = f"{base}user-manage/{bob.pk}/"
    assert client.get(manage_self).status_code == 403
    assert client.post(manage_self, {"permissions": ["run_llm"]}).status_code == 403
    assert client.post(f"{base}group-manage/1/", {"permissions": ["run_llm"]}).status_code == 403
    assert not can_run(fresh(bob), llm)
    assert not AuditEvent.objects.filter(kind="permission.granted", actor="bob").exists()


def test_a_user_with_change_cannot_grant_themselves_run_by_editing_permissions_elsewhere(client, bob, llm):
    client.force_login(bob)
    assert client.get(f"/admin/auth/user/{bob.pk}/change/").status_code == 403


# --- change audit from the admin


def test_admin_changes_are_audited_with_the_admins_username(admin_client, admin_user, secret):
    response = admin_client.post("/admin/llms/llm/add/", llm_form(
        Llm(name="new-one", provider="openai", model="gpt-4o", api_key_secret=secret)))
    assert response.status_code == 302, page(response)
    created = AuditEvent.objects.get(kind="llm.created", object_repr="new-one")
    assert (created.actor, created.user) == ("root", admin_user)

    llm = Llm.objects.get(name="new-one")
    unticked = llm_form(llm, model="gpt-4.1")
    del unticked["enabled"]  # an unticked checkbox is not sent
    response = admin_client.post(f"/admin/llms/llm/{llm.pk}/change/", unticked)
    assert response.status_code == 302, page(response)
    updated = AuditEvent.objects.filter(kind="llm.updated", object_repr="new-one").get()
    assert updated.actor == "root" and updated.detail["model"] == "gpt-4.1" and updated.detail["enabled"] is False

    admin_client.post("/admin/secrets_app/secret/add/", {
        "name": "second", "backend": "db", "ref": "", "description": "", "value": "admin-typed-" + FAKE_KEY,
    })
    assert AuditEvent.objects.get(kind="secret.created", object_repr__startswith="second").actor == "root"

    response = admin_client.post(f"/admin/llms/llm/{llm.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert AuditEvent.objects.get(kind="llm.deleted").actor == "root"

    dump = "\n".join(str(row) for row in AuditEvent.objects.values())
    assert FAKE_KEY not in dump


def test_record_change_outside_a_request_is_attributed_to_the_system(llm):
    record_change("llm.updated", llm)
    assert AuditEvent.objects.latest("id").actor == "system"


# --- where a key goes: only superusers route keys


@pytest.fixture
def editor(client, bob):
    """bob (change/view/add on Llms) who may also manage secrets."""
    from django.contrib.auth.models import Permission

    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="secrets_app"))
    client.force_login(bob)
    return client


def llm_form(llm, **changes) -> dict:
    data = {"name": llm.name, "provider": llm.provider, "model": llm.model, "base_url": llm.base_url,
            "api_key_secret": llm.api_key_secret_id or "", "default_max_tokens": llm.default_max_tokens,
            "enabled": "on", "description": llm.description, "weight": llm.weight, "max_attempts": llm.max_attempts}
    # The deployment and fallback inlines' management forms (none of either).
    inlines = {f"{prefix}-{field}": count for prefix in ("deployments", "fallbacks")
               for field, count in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0))}
    return {**data, **inlines, **changes}


def test_an_editor_cannot_move_a_key_bearing_llm_to_another_server(editor, llm, secret):
    response = editor.post(f"/admin/llms/llm/{llm.pk}/change/",
                           llm_form(llm, base_url="http://attacker.example/v1", model="gpt-4.1"))
    assert response.status_code == 302
    llm.refresh_from_db()
    assert (llm.base_url, llm.model) == ("", "gpt-4.1")  # the harmless change is kept
    assert llm.api_key_secret == secret


def test_an_editor_cannot_attach_a_secret_to_an_llm(editor, secret):
    editor.post("/admin/llms/llm/add/", llm_form(Llm(name="mine", provider="openai", model="m",
                                                     base_url="http://attacker.example/v1"),
                                                 api_key_secret=secret.pk))
    assert Llm.objects.get(name="mine").api_key_secret is None


def test_a_superuser_routes_keys(admin_client, llm):
    admin_client.post(f"/admin/llms/llm/{llm.pk}/change/", llm_form(llm, base_url="http://gpu.internal:8000/v1"))
    llm.refresh_from_db()
    assert llm.base_url == "http://gpu.internal:8000/v1"


@pytest.mark.parametrize("backend, ref", [("env", "HOME"), ("file", "/etc/hostname")])
def test_an_editor_cannot_make_mcpd_read_the_servers_environment_or_files(editor, backend, ref):
    response = editor.post("/admin/secrets_app/secret/add/", {"name": "probe", "backend": backend, "ref": ref,
                                                              "value": "", "description": ""})
    assert "Only a superuser may use" in page(response)
    assert not Secret.objects.filter(name="probe").exists()


def test_an_editor_may_add_a_db_secret(editor):
    editor.post("/admin/secrets_app/secret/add/", {"name": "team-key", "backend": "db", "ref": "",
                                                   "value": "sk-team-value", "description": ""})
    assert Secret.objects.get(name="team-key").has_value
