"""Routing fields in the admin: once an Llm has a key or a run grant, only superusers move or delete it.

Whatever decides where prompts or keys go (name, provider, base URL, secret) is a routing field: a
catalogue editor who could rename a used Llm away and give its name to their own would receive the
prompts of everyone who calls that name.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from llms.models import Llm, validate_base_url
from llms.permissions import grant_run
from tests.api.test_admin import llm_form, page

pytestmark = pytest.mark.django_db

ATTACKER = "http://attacker.example/v1"


@pytest.fixture
def editor(client, bob):
    """bob, staff with add/change/view/delete on Llms (no run, no grant, not superuser)."""
    bob.user_permissions.add(Permission.objects.get(codename="delete_llm"))
    client.force_login(bob)
    return client


@pytest.fixture
def keyless(make_llm) -> Llm:
    return make_llm("local", provider="ollama", model="llama3", api_key_secret=None)


def in_use_by(how: str, llm: Llm, carol) -> None:
    """Make the keyless `llm` used in one of the ways that lock its routing."""
    team = Group.objects.create(name="team")
    if how == "user grant":
        grant_run(carol, llm)
    elif how == "group grant":
        grant_run(team, llm)
    elif how == "model-level user grant":
        grant_run(carol, None)
    elif how == "model-level group grant":
        grant_run(team, None)


USES = ["user grant", "group grant", "model-level user grant", "model-level group grant"]


def test_an_editor_cannot_rename_a_keyed_llm_and_give_its_name_to_their_own(editor, llm, secret):
    """The hijack of the issue: rename `gpt` away, then add a keyless `gpt` pointing elsewhere."""
    response = editor.post(f"/admin/llms/llm/{llm.pk}/change/", llm_form(llm, name="gpt-old"))
    assert response.status_code == 302
    llm.refresh_from_db()
    assert llm.name == "gpt"

    response = editor.post("/admin/llms/llm/add/", llm_form(Llm(name="gpt", provider="openai", model="m",
                                                                base_url=ATTACKER)))
    assert response.status_code == 200 and "already exists" in page(response)
    assert Llm.objects.get(name="gpt").api_key_secret == secret


@pytest.mark.parametrize("how", USES)
def test_a_crafted_post_does_not_move_an_llm_that_someone_may_run(how, editor, keyless, carol, secret):
    in_use_by(how, keyless, carol)
    response = editor.post(f"/admin/llms/llm/{keyless.pk}/change/", llm_form(
        keyless, name="hijacked", provider="openai", base_url=ATTACKER, api_key_secret=secret.pk,
        model="llama3.1", description="kept"))
    assert response.status_code == 302, page(response)
    keyless.refresh_from_db()
    assert (keyless.name, keyless.provider, keyless.base_url, keyless.api_key_secret) == (
        "local", "ollama", "", None)
    assert (keyless.model, keyless.description) == ("llama3.1", "kept")  # the rest stays editable


@pytest.mark.parametrize("how", ["key", *USES])
def test_the_change_form_shows_routing_fields_read_only_to_an_editor(how, editor, keyless, carol, secret):
    if how == "key":
        keyless.api_key_secret = secret
        keyless.save()
    else:
        in_use_by(how, keyless, carol)
    html = page(editor.get(f"/admin/llms/llm/{keyless.pk}/change/"))
    for field in ("name", "provider", "base_url", "api_key_secret"):
        assert f'name="{field}"' not in html, field
    assert 'name="model"' in html


def test_an_editor_moves_an_llm_nobody_may_run(editor, keyless):
    response = editor.post(f"/admin/llms/llm/{keyless.pk}/change/",
                           llm_form(keyless, name="renamed", base_url="http://gpu.internal:11434/v1"))
    assert response.status_code == 302, page(response)
    keyless.refresh_from_db()
    assert (keyless.name, keyless.base_url) == ("renamed", "http://gpu.internal:11434/v1")


def test_a_superuser_moves_an_llm_in_use(admin_client, llm, alice):
    response = admin_client.post(f"/admin/llms/llm/{llm.pk}/change/",
                                 llm_form(llm, name="gpt-new", base_url="http://gpu.internal:8000/v1"))
    assert response.status_code == 302, page(response)
    llm.refresh_from_db()
    assert (llm.name, llm.base_url) == ("gpt-new", "http://gpu.internal:8000/v1")


# --- deleting frees a name too


@pytest.mark.parametrize("how", ["key", *USES])
def test_an_editor_cannot_delete_an_llm_in_use(how, editor, keyless, carol, secret):
    if how == "key":
        keyless.api_key_secret = secret
        keyless.save()
    else:
        in_use_by(how, keyless, carol)
    assert editor.post(f"/admin/llms/llm/{keyless.pk}/delete/", {"post": "yes"}).status_code == 403
    editor.post("/admin/llms/llm/", {"action": "delete_selected", "_selected_action": [keyless.pk], "post": "yes"})
    assert Llm.objects.filter(pk=keyless.pk).exists()
    assert not AuditEvent.objects.filter(kind="llm.deleted").exists()


def test_the_bulk_delete_refuses_the_whole_selection_when_one_llm_is_in_use(editor, keyless, make_llm):
    unused = make_llm("scratch", provider="ollama", model="m", api_key_secret=None)
    keyed = make_llm("keyed")
    response = editor.post("/admin/llms/llm/", {"action": "delete_selected", "post": "yes",
                                                "_selected_action": [unused.pk, keyed.pk]})
    assert response.status_code == 403
    assert Llm.objects.filter(pk__in=[unused.pk, keyed.pk]).count() == 2


def test_an_editor_deletes_an_llm_nobody_may_run(editor, keyless):
    assert editor.post(f"/admin/llms/llm/{keyless.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Llm.objects.filter(pk=keyless.pk).exists()


def test_a_superuser_deletes_an_llm_in_use(admin_client, llm, alice):
    assert admin_client.post(f"/admin/llms/llm/{llm.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Llm.objects.filter(pk=llm.pk).exists()


# --- credentials never ride in a base URL


@pytest.mark.parametrize("url", ["https://user:pass@host/v1", "https://user@host/v1", "http://:pass@host:8000/v1",
                                 "https://@host/v1"])
def test_a_base_url_with_userinfo_is_refused(url):
    with pytest.raises(ValidationError, match="user:password@"):
        validate_base_url(url)


def test_the_admin_refuses_a_base_url_with_userinfo(admin_client, llm):
    response = admin_client.post(f"/admin/llms/llm/{llm.pk}/change/",
                                 llm_form(llm, base_url="https://me:sekrit@gpu.internal/v1"))
    assert response.status_code == 200 and "user:password@" in page(response)
    llm.refresh_from_db()
    assert llm.base_url == ""


@pytest.fixture
def legacy(llm) -> Llm:
    """A row saved before userinfo was refused (save() does not validate)."""
    llm.base_url = "https://me:sekrit@gpu.internal/v1"
    llm.save()
    return llm


def test_a_stored_userinfo_is_never_shown(legacy, admin_client, editor, client_for, alice):
    entry = client_for(alice).get("/api/v1/llms/gpt/").json()
    assert entry["base_url"] == "https://***@gpu.internal/v1"
    for who, url in ((admin_client, "/admin/llms/llm/"), (admin_client, f"/admin/llms/llm/{legacy.pk}/change/"),
                     (editor, "/admin/llms/llm/"), (editor, f"/admin/llms/llm/{legacy.pk}/change/")):
        html = page(who.get(url))
        assert "sekrit" not in html, url
        assert "***@gpu.internal" in html, url
    assert not any("sekrit" in str(row) for row in AuditEvent.objects.values_list("detail", flat=True))


def test_a_superuser_must_remove_a_stored_userinfo_to_save(legacy, admin_client):
    shown = llm_form(legacy, base_url="https://***@gpu.internal/v1", description="edited")
    response = admin_client.post(f"/admin/llms/llm/{legacy.pk}/change/", shown)
    assert response.status_code == 200 and "user:password@" in page(response)
    legacy.refresh_from_db()
    assert legacy.base_url == "https://me:sekrit@gpu.internal/v1"  # not silently rewritten

    response = admin_client.post(f"/admin/llms/llm/{legacy.pk}/change/", {**shown, "base_url": "https://gpu.internal/v1"})
    assert response.status_code == 302
    legacy.refresh_from_db()
    assert legacy.base_url == "https://gpu.internal/v1"
