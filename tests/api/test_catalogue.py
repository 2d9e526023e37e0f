"""The read-only catalogue API, /healthz and the error shape."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from tests.conftest import FAKE_KEY

pytestmark = pytest.mark.django_db


def test_it_lists_the_llms_the_caller_may_run_with_has_api_key(alice, client_for, make_llm):
    make_llm("other")  # alice has no run on this one
    response = client_for(alice).get("/api/v1/llms/")
    assert response.status_code == 200
    names = [entry["name"] for entry in response.json()]
    assert names == ["gpt"]
    entry = response.json()[0]
    assert entry["has_api_key"] is True
    assert entry["base_url"] == "https://api.openai.com/v1"
    assert FAKE_KEY not in response.content.decode()
    assert "provider-key" not in response.content.decode()  # not even the secret's name


def test_it_shows_one_entry_and_hides_the_rest(alice, client_for, make_llm):
    make_llm("other")
    client = client_for(alice)
    assert client.get("/api/v1/llms/gpt/").json()["model"] == "gpt-4o-mini"
    response = client.get("/api/v1/llms/other/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_a_user_with_view_sees_entries_they_cannot_run(bob, client_for, llm):
    assert [e["name"] for e in client_for(bob).get("/api/v1/llms/").json()] == ["gpt"]


def test_a_user_without_any_permission_sees_nothing(carol, client_for, llm):
    assert client_for(carol).get("/api/v1/llms/").json() == []


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer", "Basic abc"])
def test_it_answers_401_in_the_contract_shape(header, llm):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/llms/")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_every_response_carries_a_request_id(alice, client_for):
    client = client_for(alice)
    assert len(client.get("/api/v1/llms/")["X-Request-ID"]) == 32
    assert client.get("/api/v1/llms/", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"


def test_unknown_api_routes_answer_404_in_the_contract_shape(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert json.loads(response.content)["error"]["type"] == "not_found_error"


def test_healthz_answers_ok_without_auth(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_connection_probe_answers_without_a_token_and_refuses_other_methods_in_the_contract_shape(client):
    assert client.head("/api/hello").status_code == 200
    assert client.get("/api/hello").json() == {"status": "ok"}
    assert client.head("/api/hello", HTTP_ACCEPT="text/html").status_code == 200
    response = client.post("/api/hello")
    assert response.status_code == 405 and response.json()["error"]["type"] == "invalid_request_error"


def test_stored_responses_are_404_for_anyone(client):
    for method, path in [("get", "resp_1"), ("delete", "resp_1"), ("post", "resp_1/cancel"),
                         ("get", "resp_1/input_items")]:
        response = getattr(client, method)(f"/v1/responses/{path}", HTTP_AUTHORIZATION="Bearer not-a-token")
        assert response.status_code == 404 and response.json()["error"]["code"] == "response_not_found"


def test_the_openapi_schema_is_served(alice, client_for):
    response = client_for(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/v1/llms/" in response.content.decode()


def test_the_openapi_schema_is_valid_and_complete(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in ("/api/v1/llms/{name}/infer:", "/v1/chat/completions:", "/v1/models:", "/v1/messages:",
                 "/v1/messages/count_tokens:", "/v1/responses:", "bearerAuth", "apiKeyHeader"):
        assert path in schema


def test_healthz_answers_503_when_the_database_does_not(client, monkeypatch):
    from django.db import OperationalError, connection

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", down)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
