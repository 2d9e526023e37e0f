"""`grant_run_llm` alone is enough to grant and revoke run on guardian's object-permissions pages,
and lets its holder grant only run: not change, delete or any other object permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from guardian.shortcuts import assign_perm, get_group_perms, get_user_perms

from audit.models import AuditEvent
from llms.models import Llm
from llms.permissions import can_run
from tests.api.test_admin import fresh, llm_form, page

pytestmark = pytest.mark.django_db

RUN_ONLY = [("run_llm", "Can run inference on the LLM")]


@pytest.fixture
def other(make_llm) -> Llm:
    """An Llm nobody in the cast holds run on."""
    return make_llm("other")


@pytest.fixture
def granter(db, client) -> User:
    """gina: staff with grant_run_llm and nothing else (not even view_llm)."""
    user = User.objects.create_user("gina", password="pw-gina-1234", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="grant_run_llm"))
    client.force_login(user)
    return user


@pytest.fixture
def team(carol) -> Group:
    group = Group.objects.create(name="team")
    carol.groups.add(group)
    return group


def base(llm: Llm) -> str:
    return f"/admin/llms/llm/{llm.pk}/permissions/"


def test_grant_run_alone_grants_and_revokes_run_for_a_user(client, granter, carol, other):
    assert client.get(base(other)).status_code == 200
    response = client.post(base(other), {"user": "carol", "submit_manage_user": "Manage user"})
    manage = f"{base(other)}user-manage/{carol.pk}/"
    assert (response.status_code, response["Location"]) == (302, manage)
    shown = client.get(manage)
    assert shown.status_code == 200
    assert list(shown.context["form"].fields["permissions"].choices) == RUN_ONLY

    assert not can_run(fresh(carol), other)
    assert client.post(manage, {"permissions": ["run_llm"]}).status_code == 302
    assert can_run(fresh(carol), other)
    granted = AuditEvent.objects.get(kind="permission.granted", detail__llm="other")
    assert (granted.actor, granted.detail["holder"], granted.detail["permission"]) == ("gina", "user:carol", "run_llm")

    assert client.post(manage, {"csrfmiddlewaretoken": "unchecked-in-tests"}).status_code == 302
    assert not can_run(fresh(carol), other)
    revoked = AuditEvent.objects.get(kind="permission.revoked", detail__llm="other")
    assert (revoked.actor, revoked.detail["holder"]) == ("gina", "user:carol")


def test_grant_run_alone_grants_and_revokes_run_for_a_group(client, granter, carol, team, other):
    response = client.post(base(other), {"group": "team", "submit_manage_group": "Manage group"})
    manage = f"{base(other)}group-manage/{team.pk}/"
    assert (response.status_code, response["Location"]) == (302, manage)
    assert list(client.get(manage).context["form"].fields["permissions"].choices) == RUN_ONLY

    assert client.post(manage, {"permissions": ["run_llm"]}).status_code == 302
    assert can_run(fresh(carol), other)
    granted = AuditEvent.objects.get(kind="permission.granted", detail__llm="other")
    assert (granted.actor, granted.detail["holder"]) == ("gina", "group:team")

    assert client.post(manage, {"csrfmiddlewaretoken": "unchecked-in-tests"}).status_code == 302
    assert not can_run(fresh(carol), other)
    assert AuditEvent.objects.get(kind="permission.revoked", detail__llm="other").actor == "gina"


@pytest.mark.parametrize("perm", ["change_llm", "delete_llm", "view_llm", "grant_run_llm"])
def test_a_granter_cannot_post_other_permissions(client, granter, carol, team, other, perm):
    for manage, holder_perms in ((f"{base(other)}user-manage/{carol.pk}/", lambda: get_user_perms(carol, other)),
                                 (f"{base(other)}group-manage/{team.pk}/", lambda: get_group_perms(team, other))):
        response = client.post(manage, {"permissions": ["run_llm", perm]})
        assert response.status_code == 200 and "Select a valid choice" in page(response)
        assert list(holder_perms()) == []
    assert not AuditEvent.objects.filter(kind="permission.granted", detail__llm="other").exists()


def test_a_granter_keeps_the_permissions_a_superuser_gave(client, granter, carol, team, other):
    for holder in (carol, team):
        for perm in ("change_llm", "view_llm"):
            assign_perm(perm, holder, other)
    for manage in (f"{base(other)}user-manage/{carol.pk}/", f"{base(other)}group-manage/{team.pk}/"):
        assert client.post(manage, {"permissions": ["run_llm"]}).status_code == 302
        assert can_run(fresh(carol), other)
        assert client.post(manage, {"csrfmiddlewaretoken": "unchecked-in-tests"}).status_code == 302
    assert not can_run(fresh(carol), other)
    assert set(get_user_perms(carol, other)) == {"change_llm", "view_llm"}
    assert set(get_group_perms(team, other)) == {"change_llm", "view_llm"}


def test_a_granter_still_cannot_open_or_post_the_llms_change_form(client, granter, other):
    change = f"/admin/llms/llm/{other.pk}/change/"
    assert client.get(change).status_code == 403
    assert client.post(change, llm_form(other, name="moved", model="m2")).status_code == 403
    assert client.get("/admin/llms/llm/").status_code == 403
    assert client.post(f"/admin/llms/llm/{other.pk}/delete/", {"post": "yes"}).status_code == 403
    other.refresh_from_db()
    assert (other.name, other.model) == ("other", "gpt-4o-mini")


def test_the_permissions_pages_do_not_offer_the_granter_the_catalogue(client, granter, carol, other):
    for url in (base(other), f"{base(other)}user-manage/{carol.pk}/"):
        response = client.get(url)
        assert response.status_code == 200, url
        html = page(response)
        assert 'href="/admin/llms/llm/"' not in html, url  # neither breadcrumbs nor the sidebar link it
        assert f'href="/admin/llms/llm/{other.pk}/change/"' not in html, url


def test_with_view_a_granter_finds_the_llm_and_its_permissions_link_but_edits_nothing(client, granter, other):
    granter.user_permissions.add(Permission.objects.get(codename="view_llm"))
    assert "other" in page(client.get("/admin/llms/llm/"))
    html = page(client.get(f"/admin/llms/llm/{other.pk}/change/"))
    assert "permissionslink" in html and 'name="name"' not in html and 'name="model"' not in html
    assert client.post(f"/admin/llms/llm/{other.pk}/change/", llm_form(other, model="m2")).status_code == 403


def test_a_granter_who_may_also_change_llms_still_grants_only_run(client, granter, carol, other):
    granter.user_permissions.add(Permission.objects.get(codename="change_llm"))
    manage = f"{base(other)}user-manage/{carol.pk}/"
    assert list(client.get(manage).context["form"].fields["permissions"].choices) == RUN_ONLY
    assert client.post(manage, {"permissions": ["change_llm"]}).status_code == 200
    assert list(get_user_perms(carol, other)) == []


def test_a_superuser_still_manages_every_object_permission(admin_client, carol, other):
    choices = dict(admin_client.get(f"{base(other)}user-manage/{carol.pk}/").context["form"]
                   .fields["permissions"].choices)
    assert {"run_llm", "change_llm", "delete_llm", "view_llm"} <= set(choices)
    admin_client.post(f"{base(other)}user-manage/{carol.pk}/", {"permissions": ["run_llm", "change_llm"]})
    assert set(get_user_perms(carol, other)) == {"run_llm", "change_llm"}
