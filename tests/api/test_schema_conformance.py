"""schemathesis against mcpd's own OpenAPI schema (/api/schema/), in process through the WSGI app: every
operation, valid and invalid requests, as a superuser (so every route is reached) with the schema's
examples naming an Llm on the loopback fake (so the inference routes answer 200, whole and streamed too).
"""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mcpd.schema import EXAMPLE_LLM
from mcpd.wsgi import application

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def root_token(admin_user, token_for) -> str:
    return token_for(admin_user)


@pytest.fixture
def api_schema(root_token, upstream_llm, fake_upstream, settings):
    settings.API_MAX_AUTH_FAILURES_PER_ADDRESS = 0
    fake_upstream.stream_interval = 0
    upstream_llm.name = EXAMPLE_LLM  # what the schema's examples call
    upstream_llm.save()
    # As Django's test client does: the app runs inside the test's transaction, which closing "old"
    # connections at each request's end would break.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        config = schemathesis.Config.from_dict({
            "headers": {"Authorization": f"Bearer {root_token}"},
            "generation": {"mode": "all"},  # valid and invalid requests
            # The contract's 501 (count_tokens on an Llm that is not anthropic's) is documented, not a failure.
            "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]}},
        })
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=config)
        yield schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


# A tenth of the profile's count per operation (tests/conftest.py): 30 in the suite, more when exploring.
@schema.parametrize()
@settings(max_examples=max(30, settings.default.max_examples // 10))
def test_every_operation_answers_as_the_schema_says(case):
    case.call_and_validate(checks=CHECKS)


def routes(patterns, prefix: str = "") -> list[str]:
    """Every URL the project routes, as an OpenAPI path (/v1/models/{name})."""
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return found


def test_every_api_and_v1_route_is_in_the_schema(client):
    documented = set(json.loads(client.get("/api/schema/?format=json").content)["paths"])
    served = {route for route in routes(get_resolver().url_patterns) if route.startswith(("/api/", "/v1/"))}
    assert served - documented == {"/api/schema/", "/api/docs/"}  # the schema itself and its page
