"""Repeated 401s from one address become 429 rate_limit_error, with Retry-After, until the window ends."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from mcpd.auth import blocked_addresses
from mcpd.models import ApiToken, ThrottleCounter

pytestmark = pytest.mark.django_db

CHAT = {"messages": [{"role": "user", "content": "Say hello"}]}
TOO_MANY = "Too many failed authentication attempts from this address; try again in {} seconds."


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.API_MAX_AUTH_FAILURES_PER_ADDRESS = 3
    settings.API_AUTH_LOCKOUT_SECONDS = 60


def bearer(token: str, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def models(client):
    return client.get("/v1/models")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def fail(times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        assert models(bearer("mcpd_not-a-token", address)).status_code == 401


def test_an_address_over_its_limit_gets_429_with_retry_after(clock, db):
    clock.advance(20)
    fail(3)
    response = models(bearer("mcpd_not-a-token"))
    assert response.status_code == 429 and response["Retry-After"] == "40"
    assert error_of(response) == {"message": TOO_MANY.format(40), "type": "rate_limit_error", "param": None,
                                  "code": "rate_limited"}
    assert "WWW-Authenticate" not in response


def test_every_kind_of_401_counts(alice, token_for, clock):
    revoked, _ = ApiToken.objects.issue(alice)
    ApiToken.objects.filter(pk=revoked.pk).update(revoked=True)
    expired = token_for(alice, expires_at=timezone.now() - timedelta(days=1))
    assert models(APIClient()).status_code == 401  # no credentials at all
    assert models(bearer(expired)).status_code == 401
    assert APIClient(HTTP_AUTHORIZATION="Bearer two parts").get("/api/v1/llms/").status_code == 401  # malformed
    assert models(bearer("mcpd_unknown")).status_code == 429
    assert models(APIClient()).status_code == 429


def test_a_blocked_address_is_refused_before_any_token_lookup(alice, token_for, clock):
    token = token_for(alice)
    fail(3)
    with CaptureQueriesContext(connection) as queries:
        response = models(bearer(token))
    assert response.status_code == 429 and error_of(response)["code"] == "rate_limited"
    assert len(queries) == 0


def test_the_count_is_shared_a_process_that_has_not_seen_the_failures_refuses_too(clock, db):
    fail(3)
    blocked_addresses.clear()  # as another worker: nothing in memory, only the count in the database
    assert models(bearer("mcpd_not-a-token")).status_code == 429
    assert ThrottleCounter.objects.get(scope="api-auth-address").count == 4


def test_other_addresses_are_not_affected(alice, token_for, clock):
    fail(3, address="192.0.2.1")
    assert models(bearer("mcpd_not-a-token", address="198.51.100.2")).status_code == 401
    assert models(bearer(token_for(alice), address="198.51.100.2")).status_code == 200


def test_the_address_is_free_again_when_the_window_ends(alice, token_for, clock):
    fail(3)
    assert models(bearer(token_for(alice))).status_code == 429
    clock.advance(60)
    assert models(bearer(token_for(alice))).status_code == 200
    assert models(bearer("mcpd_not-a-token")).status_code == 401


def test_a_valid_token_costs_no_throttle_query(alice, token_for, clock, settings):
    token = token_for(alice)
    assert models(bearer(token)).status_code == 200  # the first use also records last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert models(bearer(token)).status_code == 200
    assert not any(ThrottleCounter._meta.db_table in q["sql"] for q in queries)
    settings.API_MAX_AUTH_FAILURES_PER_ADDRESS = 0
    with CaptureQueriesContext(connection) as unthrottled:
        assert models(bearer(token)).status_code == 200
    assert len(queries) == len(unthrottled)


def test_one_failure_costs_one_upsert(clock, db):
    fail(1)  # the window's first row
    with CaptureQueriesContext(connection) as queries:
        fail(1)
    assert len([q for q in queries if ThrottleCounter._meta.db_table in q["sql"]]) == 1


def test_a_count_that_cannot_be_written_leaves_the_401_alone(clock, monkeypatch, db):
    from django.db import DatabaseError

    from mcpd import throttle

    def broken(limit, key):
        raise DatabaseError("database is locked")

    monkeypatch.setattr(throttle, "hit", broken)
    response = models(bearer("mcpd_not-a-token"))
    assert response.status_code == 401 and error_of(response)["type"] == "authentication_error"


def test_zero_turns_the_limit_off(clock, settings, db):
    settings.API_MAX_AUTH_FAILURES_PER_ADDRESS = 0
    fail(20)
    assert not ThrottleCounter.objects.exists()


def test_a_throttled_inference_call_is_audited_once_with_its_429(upstream_llm, audit_rows, clock):
    def infer():
        return bearer("mcpd_not-a-token").post("/api/v1/llms/gpt/infer", data=json.dumps(CHAT),
                                               content_type="application/json")

    assert [infer().status_code for _ in range(4)] == [401, 401, 401, 429]  # the 4th: refused from memory
    blocked_addresses.clear()
    assert infer().status_code == 429  # refused from the count in the database
    rows = audit_rows()
    assert [row.status for row in rows] == [401, 401, 401, 429, 429]
    assert all(row.outcome == "error" and row.llm_name == "gpt" for row in rows)
    assert rows[3].error.startswith("Refused before authentication")
    assert rows[4].error == "4 failed authentications in the window; Invalid API token."


def test_behind_a_proxy_each_forwarded_address_has_its_own_count(settings, clock, db):
    settings.TRUSTED_PROXY_HOPS = 1
    for _ in range(3):
        assert APIClient(HTTP_X_FORWARDED_FOR="192.0.2.1").get("/v1/models").status_code == 401
    assert APIClient(HTTP_X_FORWARDED_FOR="192.0.2.1").get("/v1/models").status_code == 429
    assert APIClient(HTTP_X_FORWARDED_FOR="198.51.100.2").get("/v1/models").status_code == 401
