"""Token edits in the admin: revocation is one-way, owners only shorten an expiry, the audit says what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from mcpd.models import ApiToken
from tests.api.test_admin import page

pytestmark = pytest.mark.django_db

EXPIRY = datetime(2031, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def owner(db, client) -> User:
    """Staff who may manage their own API tokens, and nothing else."""
    user = User.objects.create_user("erin", password="pw-erin-1234", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="mcpd"))
    client.force_login(user)
    return user


def issue(user: User, expires_at=EXPIRY, name: str = "laptop") -> ApiToken:
    return ApiToken.objects.issue(user, name=name, expires_at=expires_at)[0]


def token_form(token: ApiToken, **changes) -> dict:
    """What the change form posts; `expires_at` is a datetime or None, `revoked` a bool."""
    values = {"name": token.name, "expires_at": token.expires_at, "revoked": token.revoked, **changes}
    expires = values["expires_at"]
    data = {"name": values["name"],
            "expires_at_0": expires.strftime("%Y-%m-%d") if expires else "",
            "expires_at_1": expires.strftime("%H:%M:%S") if expires else ""}
    if values["revoked"]:
        data["revoked"] = "on"
    return data


def change(client, token: ApiToken, **changes):
    return client.post(f"/admin/mcpd/apitoken/{token.pk}/change/", token_form(token, **changes))


def kinds() -> list[str]:
    return list(AuditEvent.objects.filter(kind__startswith="token.").order_by("id").values_list("kind", flat=True))


# --- revocation is one-way


def test_an_owner_cannot_unrevoke_a_token_a_superuser_revoked(client, owner, admin_client):
    token = issue(owner)
    admin_client.post("/admin/mcpd/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked

    html = page(client.get(f"/admin/mcpd/apitoken/{token.pk}/change/"))
    assert 'name="revoked"' not in html  # shown read-only
    response = change(client, token, revoked=False)
    assert response.status_code == 302, page(response)
    token.refresh_from_db()
    assert token.revoked


def test_a_superuser_cannot_unrevoke_a_token_either(admin_client, alice):
    token = issue(alice)
    token.revoked = True
    token.save()
    change(admin_client, token, revoked=False)
    token.refresh_from_db()
    assert token.revoked


def test_the_model_refuses_to_save_a_revoked_token_as_unrevoked(alice):
    token = issue(alice)
    token.revoked = True
    token.save()
    loaded = ApiToken.objects.get(pk=token.pk)
    for instance in (token, loaded):
        instance.revoked = False
        with pytest.raises(ValueError, match="stays revoked"):
            instance.save()
    assert ApiToken.objects.get(pk=token.pk).revoked


def test_revoking_through_the_change_form_works(client, owner):
    token = issue(owner)
    response = change(client, token, revoked=True)
    assert response.status_code == 302, page(response)
    token.refresh_from_db()
    assert token.revoked


# --- owners may only shorten an expiry


@pytest.mark.parametrize("new", [EXPIRY - timedelta(days=30), EXPIRY - timedelta(seconds=1)])
def test_an_owner_shortens_an_expiry(client, owner, new):
    token = issue(owner)
    response = change(client, token, expires_at=new)
    assert response.status_code == 302, page(response)
    token.refresh_from_db()
    assert token.expires_at == new


def test_an_owner_sets_an_expiry_where_there_was_none(client, owner):
    token = issue(owner, expires_at=None)
    assert change(client, token, expires_at=EXPIRY).status_code == 302
    token.refresh_from_db()
    assert token.expires_at == EXPIRY


@pytest.mark.parametrize("new", [EXPIRY + timedelta(days=365), EXPIRY + timedelta(seconds=1), None])
def test_an_owner_cannot_extend_or_remove_an_expiry(client, owner, new):
    token = issue(owner)
    response = change(client, token, expires_at=new, name="renamed")
    assert response.status_code == 200
    assert "only shorten" in page(response)
    token.refresh_from_db()
    assert (token.expires_at, token.name) == (EXPIRY, "laptop")


def test_a_superuser_extends_or_removes_an_expiry(admin_client, alice):
    token = issue(alice)
    assert change(admin_client, token, expires_at=EXPIRY + timedelta(days=365)).status_code == 302
    token.refresh_from_db()
    assert token.expires_at == EXPIRY + timedelta(days=365)
    assert change(admin_client, token, expires_at=None).status_code == 302
    token.refresh_from_db()
    assert token.expires_at is None


def test_renaming_keeps_an_expiry_the_form_shows_without_microseconds(client, owner):
    precise = EXPIRY.replace(microsecond=123456)
    token = issue(owner, expires_at=precise)
    assert change(client, token, name="renamed").status_code == 302
    token.refresh_from_db()
    assert (token.name, token.expires_at) == ("renamed", precise)
    assert kinds() == ["token.issued", "token.updated"]


# --- the audit says what changed


def test_the_audit_says_what_changed(client, owner, admin_client):
    token = issue(owner)
    change(client, token, name="renamed")
    change(client, token, name="renamed", expires_at=EXPIRY - timedelta(days=1))
    admin_client.post("/admin/mcpd/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    change(client, token, name="renamed-again")

    assert kinds() == ["token.issued", "token.updated", "token.expiry_changed", "token.revoked", "token.updated"]
    expiry = AuditEvent.objects.get(kind="token.expiry_changed")
    assert expiry.actor == "erin"
    assert expiry.detail["old_expires_at"] == "2031-06-01T12:00:00+00:00"
    assert expiry.detail["new_expires_at"] == "2031-05-31T12:00:00+00:00"
    assert AuditEvent.objects.get(kind="token.revoked").actor == "root"


def test_the_audit_of_a_set_or_removed_expiry_says_none(alice):
    token = issue(alice, expires_at=None)
    token.expires_at = EXPIRY
    token.save()
    token.expires_at = None
    token.save()
    rows = AuditEvent.objects.filter(kind="token.expiry_changed").order_by("id")
    assert [(r.detail["old_expires_at"], r.detail["new_expires_at"]) for r in rows] == [
        (None, "2031-06-01T12:00:00+00:00"), ("2031-06-01T12:00:00+00:00", None)]


def test_saving_a_token_reads_nothing_back_to_know_what_changed(alice):
    token = ApiToken.objects.get(pk=issue(alice).pk)
    token.name = "renamed"
    with CaptureQueriesContext(connection) as queries:
        token.save()
    assert not [q for q in queries.captured_queries
                if q["sql"].startswith("SELECT") and ApiToken._meta.db_table in q["sql"]]
