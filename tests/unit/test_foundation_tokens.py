"""API tokens: stored as a digest only, Bearer authentication through the real API, last use, sessions."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from mcpd.models import ApiToken

pytestmark = pytest.mark.django_db

URL = "/api/v1/llms/"



def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_401(response) -> None:
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "authentication_error"
    assert response["WWW-Authenticate"].startswith("Bearer")


def token_updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].upper().startswith("UPDATE") and "mcpd_apitoken" in q["sql"]]


# --- storage


def test_issue_stores_only_the_sha256_of_the_token(alice):
    token, plaintext = ApiToken.objects.issue(alice, name="ci")
    assert plaintext.startswith("mcpd_") and len(plaintext) > 30
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert row["sha256"] == hashlib.sha256(plaintext.encode()).hexdigest()
    for column, value in row.items():
        assert plaintext not in str(value), column


def test_issue_keeps_a_short_prefix_to_recognise_the_token(alice):
    token, plaintext = ApiToken.objects.issue(alice, name="ci")
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.prefix == plaintext[:12]
    assert len(stored.prefix) < len(plaintext) // 2
    assert stored.prefix in str(stored) and plaintext not in str(stored) and plaintext not in repr(stored)


def test_each_issue_gives_a_different_token(alice):
    assert ApiToken.objects.issue(alice)[1] != ApiToken.objects.issue(alice)[1]


# --- Bearer authentication through the API


def test_it_accepts_a_good_token(alice, token_for):
    response = bearer(token_for(alice)).get(URL)
    assert response.status_code == 200
    assert [entry["name"] for entry in response.json()] == ["gpt"]


def test_it_accepts_a_token_that_expires_later(alice, token_for):
    assert bearer(token_for(alice, expires_at=timezone.now() + timedelta(hours=1))).get(URL).status_code == 200


def test_it_refuses_an_unknown_token(alice, token_for):
    token_for(alice)
    assert_401(bearer("mcpd_not-a-token-we-issued").get(URL))


def test_it_refuses_the_digest_in_place_of_the_token(alice):
    token, _ = ApiToken.objects.issue(alice)
    assert_401(bearer(token.sha256).get(URL))


def test_it_refuses_a_revoked_token(alice):
    token, plaintext = ApiToken.objects.issue(alice)
    token.revoked = True
    token.save()
    response = bearer(plaintext).get(URL)
    assert_401(response)
    assert "revoked" in response.json()["error"]["message"]


def test_it_refuses_an_expired_token(alice, token_for):
    response = bearer(token_for(alice, expires_at=timezone.now() - timedelta(seconds=1))).get(URL)
    assert_401(response)
    assert "expired" in response.json()["error"]["message"]


def test_it_refuses_the_token_of_an_inactive_user(dave, token_for):
    response = bearer(token_for(dave)).get(URL)
    assert_401(response)
    assert "inactive" in response.json()["error"]["message"]


def test_it_refuses_a_token_once_its_user_is_deactivated(alice, token_for):
    client = bearer(token_for(alice))
    assert client.get(URL).status_code == 200
    alice.is_active = False
    alice.save()
    assert_401(client.get(URL))


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Token abc"])
def test_it_refuses_a_malformed_or_foreign_header(header, alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_401(client.get(URL))


# --- last use


def test_it_records_last_use_and_rewrites_it_at_most_once_a_minute(alice, settings):
    settings.AUTH_CACHE_SECONDS = 0  # the row is moved back in time below, behind the memo's back
    token, plaintext = ApiToken.objects.issue(alice)
    assert token.last_used_at is None
    client = bearer(plaintext)

    with CaptureQueriesContext(connection) as first:
        assert client.get(URL).status_code == 200
    assert len(token_updates(first)) == 1
    token.refresh_from_db()
    used = token.last_used_at
    assert used is not None and timezone.now() - used < timedelta(seconds=10)

    with CaptureQueriesContext(connection) as again:
        assert client.get(URL).status_code == 200
    assert token_updates(again) == []
    token.refresh_from_db()
    assert token.last_used_at == used

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=used - timedelta(minutes=2))
    with CaptureQueriesContext(connection) as later:
        assert client.get(URL).status_code == 200
    assert len(token_updates(later)) == 1
    token.refresh_from_db()
    assert token.last_used_at > used - timedelta(seconds=1)


def test_a_refused_token_records_no_use(alice):
    token, plaintext = ApiToken.objects.issue(alice)
    token.revoked = True
    token.save()
    bearer(plaintext).get(URL)
    token.refresh_from_db()
    assert token.last_used_at is None


# --- sessions


def test_a_logged_in_session_reaches_the_catalogue(alice, client):
    client.force_login(alice)
    response = client.get(URL)
    assert response.status_code == 200
    assert [entry["name"] for entry in response.json()] == ["gpt"]


def test_a_session_of_an_inactive_user_is_refused(dave, client):
    client.force_login(dave)
    assert_401(client.get(URL))
