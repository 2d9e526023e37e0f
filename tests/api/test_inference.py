"""The inference routes end to end against the loopback fake provider (through Django's test client)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.core.signals import request_finished
from django.db import close_old_connections

from audit.models import AuditEvent
from llms.permissions import grant_run
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import connection_refused_url, json_reply, raw_reply, sse_reply

pytestmark = pytest.mark.django_db

CHAT = {"messages": [{"role": "user", "content": "Say hello"}]}


def infer(client, body=CHAT, name="gpt", **extra):
    return client.post(f"/api/v1/llms/{name}/infer", data=json.dumps(body), content_type="application/json", **extra)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_it_forwards_a_completion_and_records_one_audit_row(alice, client_for, upstream_llm, fake_upstream,
                                                            audit_rows):
    body = {**CHAT, "model": "ignored", "temperature": 0.2, "x_vendor_field": {"kept": True}}
    response = infer(client_for(alice), body, HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the fake provider."
    assert response["X-Request-ID"] == "req-42"
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.json() == {**body, "model": "gpt-4o-mini"}  # unchanged but for model, unknown fields kept
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    [row] = audit_rows()
    assert (row.user, row.llm_name, row.provider, row.model) == (alice, "gpt", "openai", "gpt-4o-mini")
    assert (row.status, row.outcome, row.streaming) == (200, "ok", False)
    assert (row.prompt_tokens, row.completion_tokens) == (9, 6)
    assert row.request_id == "req-42" and len(row.token_sha) == 64 and row.duration_ms is not None


def test_client_headers_are_never_forwarded(alice, client_for, upstream_llm, fake_upstream):
    infer(client_for(alice), HTTP_X_CUSTOM="leak", HTTP_COOKIE="sessionid=abc")
    sent = fake_upstream.requests[0].headers
    assert "X-Custom" not in sent and "Cookie" not in sent
    assert sent["Authorization"] == f"Bearer {FAKE_KEY}"  # mcpd's key, not the client's token


def test_an_llm_without_secret_sends_no_auth_header(alice, client_for, upstream_llm, fake_upstream):
    upstream_llm.api_key_secret = None
    upstream_llm.save()
    assert infer(client_for(alice)).status_code == 200
    assert "Authorization" not in fake_upstream.requests[0].headers


def test_an_unresolvable_secret_is_502_secret_unavailable(alice, client_for, upstream_llm, fake_upstream, audit_rows):
    secret = upstream_llm.api_key_secret
    secret.backend, secret.ref, secret.encrypted_value = "env", "MCPD_TEST_UNSET_VARIABLE", ""
    secret.save()
    response = infer(client_for(alice))
    assert response.status_code == 502
    assert error_of(response)["code"] == "secret_unavailable"
    assert "MCPD_TEST_UNSET_VARIABLE" not in error_of(response)["message"]  # server detail stays inside
    assert fake_upstream.requests == []
    [row] = audit_rows()
    assert (row.status, row.outcome) == (502, "error") and "MCPD_TEST_UNSET_VARIABLE" in row.error


def test_the_openai_route_names_the_llm_in_model(alice, client_for, upstream_llm, fake_upstream):
    response = client_for(alice).post("/v1/chat/completions", data=json.dumps({**CHAT, "model": "gpt"}),
                                      content_type="application/json")
    assert response.status_code == 200
    assert fake_upstream.requests[0].json()["model"] == "gpt-4o-mini"


def test_the_openai_route_requires_model(alice, client_for, upstream_llm, audit_rows):
    response = client_for(alice).post("/v1/chat/completions", data=json.dumps(CHAT), content_type="application/json")
    assert response.status_code == 400 and "model" in error_of(response)["message"]
    assert [r.status for r in audit_rows()] == [400]


@pytest.mark.parametrize("raw, fragment", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("{}", "'messages' is required"),
    ('{"messages": []}', "non-empty"),
    ('{"messages": "hi"}', "non-empty"),
    ('{"messages": ["hi"]}', "messages[0] must be an object"),
    ('{"messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
    ('{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    ('{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream' must be a boolean"),
    ('{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "'max_tokens'"),
])
def test_bad_bodies_get_400_and_one_audit_row(alice, client_for, upstream_llm, fake_upstream, audit_rows, raw,
                                              fragment):
    response = client_for(alice).post("/api/v1/llms/gpt/infer", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"
    assert fragment in error_of(response)["message"]
    assert fake_upstream.requests == []
    assert [(r.status, r.outcome) for r in audit_rows()] == [(400, "error")]


def test_a_body_over_the_limit_is_413(alice, client_for, upstream_llm, settings, audit_rows):
    settings.MAX_BODY_BYTES = 100
    response = infer(client_for(alice), {"messages": [{"role": "user", "content": "x" * 200}]})
    assert response.status_code == 413 and error_of(response)["type"] == "request_too_large"
    assert [r.status for r in audit_rows()] == [413]


# --- permissions: the contract's 401 / 403 / 404


def test_no_token_is_401_and_audited(client, upstream_llm, audit_rows):
    response = client.post("/api/v1/llms/gpt/infer", data=json.dumps(CHAT), content_type="application/json")
    assert response.status_code == 401 and error_of(response)["type"] == "authentication_error"
    [row] = audit_rows()
    assert (row.status, row.user, row.llm_name) == (401, None, "gpt")


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_callers_without_run_get_403_whether_or_not_the_name_exists(who, request, client_for, upstream_llm,
                                                                    fake_upstream):
    client = client_for(request.getfixturevalue(who))
    existing, missing = infer(client, name="gpt"), infer(client, name="no-such-llm")
    assert existing.status_code == missing.status_code == 403
    assert error_of(existing)["type"] == error_of(missing)["type"] == "permission_error"
    assert fake_upstream.requests == []


def test_an_inactive_user_is_refused(dave, token_for, upstream_llm):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(dave)}")
    assert infer(client).status_code == 401


def test_a_runner_of_one_llm_gets_403_for_an_unknown_name(alice, client_for, upstream_llm):
    assert infer(client_for(alice), name="no-such-llm").status_code == 403


def test_a_caller_who_may_run_everything_gets_404_for_unknown_and_disabled(carol, client_for, upstream_llm, make_llm):
    grant_run(carol, None)
    make_llm("off", enabled=False)
    client = client_for(carol)
    assert error_of(infer(client, name="no-such-llm"))["type"] == "not_found_error"
    assert infer(client, name="off").status_code == 404
    assert infer(client, name="gpt").status_code == 200


def test_group_and_superuser_grants_run(carol, admin_user, client_for, upstream_llm):
    group = Group.objects.create(name="runners")
    grant_run(group, upstream_llm)
    carol.groups.add(group)
    assert infer(client_for(carol)).status_code == 200
    assert infer(client_for(admin_user)).status_code == 200


def test_a_logged_in_session_needs_csrf(alice, upstream_llm):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = infer(client)
    assert response.status_code == 403  # no CSRF token: refused before anything is spent


def test_gemini_cli_is_501(admin_user, client_for, make_llm, fake_upstream):
    make_llm("gem", provider="gemini-cli", model="gemini-2.5-pro")
    response = infer(client_for(admin_user), name="gem")
    assert response.status_code == 501 and error_of(response)["type"] == "unsupported_provider"


# --- provider failures


@pytest.mark.parametrize("reply, status, kind, code", [
    (json_reply({"error": {"message": "boom"}}, status=500), 502, "upstream_error", "upstream_server_error"),
    (json_reply({"error": {"message": "overloaded"}}, status=529), 502, "upstream_error", "upstream_overloaded"),
    (raw_reply(b"<html>bad gateway"), 502, "upstream_error", "upstream_bad_response"),
    (raw_reply(b'{"no": "choices"}'), 502, "upstream_error", "upstream_bad_response"),
    (json_reply({"error": {"message": "bad key"}}, status=401), 502, "upstream_error", "upstream_auth_failed"),
    (json_reply({"error": {"message": "forbidden"}}, status=403), 502, "upstream_error", "upstream_auth_failed"),
    (json_reply({"error": {"message": "context too long"}}, status=400), 400, "invalid_request_error", None),
])
def test_provider_failures_map_to_the_contract(alice, client_for, upstream_llm, fake_upstream, audit_rows, reply,
                                               status, kind, code):
    fake_upstream.reply(reply)
    response = infer(client_for(alice))
    assert response.status_code == status
    assert (error_of(response)["type"], error_of(response)["code"]) == (kind, code)
    [row] = audit_rows()
    assert (row.status, row.outcome) == (status, "error")


def test_a_provider_400_passes_its_message_on(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(json_reply({"error": {"message": "This model's maximum context length is 8192"}}, status=400))
    assert "maximum context length" in error_of(infer(client_for(alice)))["message"]


def test_a_provider_429_passes_retry_after_on(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(json_reply({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "7"}))
    response = infer(client_for(alice))
    assert response.status_code == 429 and response["Retry-After"] == "7"
    assert error_of(response)["type"] == "rate_limit_error"


def test_an_unreachable_provider_is_502(alice, client_for, upstream_llm):
    upstream_llm.base_url = connection_refused_url()
    upstream_llm.save()
    response = infer(client_for(alice))
    assert response.status_code == 502 and "unreachable" in error_of(response)["message"]


def test_a_slow_provider_is_504(alice, client_for, upstream_llm, fake_upstream, settings, audit_rows):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    fake_upstream.reply(json_reply({"choices": []}, delay=1.5))
    response = infer(client_for(alice))
    assert response.status_code == 504 and error_of(response)["type"] == "timeout_error"
    assert audit_rows()[0].status == 504


def test_a_key_echoed_by_the_provider_never_leaves(alice, client_for, upstream_llm, fake_upstream, caplog):
    masked = FAKE_KEY[:7] + "*" * 20 + FAKE_KEY[-4:]
    fake_upstream.reply(
        json_reply({"error": {"message": f"Bad request for key {FAKE_KEY} ({masked})"}}, status=400),
        json_reply({"error": {"message": f"Incorrect API key provided: {masked}"}}, status=401),
        json_reply({"error": {"message": f"key {FAKE_KEY} exploded"}}, status=500),
    )
    client = client_for(alice)
    bodies = [infer(client).content.decode() for _ in range(3)]
    texts = bodies + [json.dumps(list(AuditEvent.objects.values()), default=str), caplog.text]
    for text in texts:
        assert FAKE_KEY not in text and FAKE_KEY[-8:] not in text and masked not in text
    assert "[redacted]" in bodies[0]


# --- streaming through the test client


def close(response) -> None:
    """Close as a server would when the client leaves; like Django's test client, without letting
    request_finished close the test's database connection (it holds the test transaction)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def frames_of(response) -> list[bytes]:
    data = b"".join(response.streaming_content)  # the test client closes the response once exhausted
    return [frame for frame in data.split(b"\n\n") if frame]


def test_a_stream_is_relayed_as_sse_ending_in_done(alice, client_for, upstream_llm, fake_upstream, audit_rows):
    response = infer(client_for(alice), {**CHAT, "stream": True})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    frames = frames_of(response)
    assert frames[-1] == b"data: [DONE]"
    chunks = [json.loads(f[len(b"data: "):]) for f in frames[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from the fake provider."
    assert all(c["choices"] for c in chunks)  # no usage chunk: the client did not ask for one
    [row] = audit_rows()
    assert (row.streaming, row.status, row.outcome) == (True, 200, "ok")
    assert (row.prompt_tokens, row.completion_tokens) == (9, 6)  # asked upstream on the client's behalf
    assert row.ttft_ms is not None and row.duration_ms >= row.ttft_ms
    assert fake_upstream.requests[0].json()["stream_options"] == {"include_usage": True}


def test_a_stream_keeps_the_usage_chunk_the_client_asked_for(alice, client_for, upstream_llm):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [json.loads(f[6:]) for f in frames_of(infer(client_for(alice), body))[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 15


def test_a_stream_that_fails_before_starting_is_a_json_error(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(json_reply({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "3"}))
    response = infer(client_for(alice), {**CHAT, "stream": True})
    assert response.status_code == 429 and response["Retry-After"] == "3"
    assert error_of(response)["type"] == "rate_limit_error"


@pytest.mark.parametrize("reply, kind", [
    (sse_reply(['data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'], drop_after=1), "upstream_error"),
    (sse_reply(['data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', "data: {not json\n\n"]),
     "upstream_error"),
    (sse_reply(['data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n']), "upstream_error"),
])
def test_a_stream_failing_midway_ends_with_one_error_event_and_no_done(alice, client_for, upstream_llm,
                                                                       fake_upstream, audit_rows, reply, kind):
    fake_upstream.reply(reply)
    frames = frames_of(infer(client_for(alice), {**CHAT, "stream": True}))
    assert b"[DONE]" not in b"".join(frames)
    assert json.loads(frames[0][6:])["choices"][0]["delta"]["content"] == "Hi"
    assert json.loads(frames[-1][6:])["error"]["type"] == kind
    [row] = audit_rows()
    assert (row.status, row.outcome) == (200, "error")
    assert row.error.startswith("after the stream began: 502")


def test_a_stream_stalling_midway_is_a_timeout_event(alice, client_for, upstream_llm, fake_upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    fake_upstream.reply(sse_reply(['data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'], hang_after=1))
    frames = frames_of(infer(client_for(alice), {**CHAT, "stream": True}))
    assert json.loads(frames[-1][6:])["error"]["type"] == "timeout_error"


def stream_of(llm):
    from audit.recorder import Caller
    from llms import proxy

    return proxy.chat_completion(Caller(request_id="r1"), llm, {**CHAT, "stream": True})


def test_two_frames_then_close_records_a_disconnect_once(upstream_llm, fake_upstream, audit_rows):
    stream = stream_of(upstream_llm)
    frames = iter(stream)
    assert next(frames).data.startswith(b"{") and next(frames).data.startswith(b"{")
    stream.close()
    stream.close()
    [row] = audit_rows()
    assert (row.outcome, row.status, row.streaming, row.llm_name) == ("client_disconnected", 200, True, "gpt")
    assert row.ttft_ms is not None


def test_close_before_any_iteration_records_one_row(upstream_llm, fake_upstream, audit_rows):
    stream = stream_of(upstream_llm)
    stream.close()
    stream.close()
    assert [(r.outcome, r.ttft_ms) for r in audit_rows()] == [("client_disconnected", None)]


def test_closing_a_stream_before_reading_records_one_row(alice, client_for, upstream_llm, audit_rows):
    response = infer(client_for(alice), {**CHAT, "stream": True})
    close(response)
    assert [r.outcome for r in audit_rows()] == ["client_disconnected"]


# --- /v1/models


def test_models_lists_what_the_caller_may_run(alice, client_for, upstream_llm, make_llm):
    make_llm("other")
    body = client_for(alice).get("/v1/models").json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [("gpt", "model", "openai")]
    assert isinstance(body["data"][0]["created"], int)


def test_a_provider_stalling_in_the_body_is_504(alice, client_for, upstream_llm, fake_upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    # The status line and headers arrive, then the body never does.
    fake_upstream.reply(sse_reply(["data: {}\n\n"], hang_after=0))
    response = infer(client_for(alice))
    assert response.status_code == 504 and error_of(response)["type"] == "timeout_error"


def test_a_translation_bug_mid_stream_still_ends_the_stream_and_is_audited(alice, client_for, upstream_llm,
                                                                           monkeypatch, audit_rows):
    from llms.adapters.passthrough import PassthroughStream

    def broken(self, event):
        raise KeyError("bug")

    monkeypatch.setattr(PassthroughStream, "feed", broken)
    frames = frames_of(infer(client_for(alice), {**CHAT, "stream": True}))
    assert [json.loads(f[6:])["error"]["type"] for f in frames] == ["api_error"]
    assert [(r.status, r.outcome) for r in audit_rows()] == [(200, "error")]


def test_metrics_count_calls_in_the_prometheus_format(alice, client_for, upstream_llm, client):
    def calls() -> float:
        text = client.get("/metrics").content.decode()
        # Earlier tests may have served an Llm named gpt from another provider: a line each, summed.
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("mcpd_inference_calls_total{") and 'llm="gpt"' in line
                   and 'provider="openai"' in line and 'status="200"' in line and 'outcome="ok"' in line)

    before = calls()
    infer(client_for(alice))
    assert calls() == before + 1
    assert client.get("/metrics")["Content-Type"].startswith("text/plain")


def test_finished_streams_give_their_upstream_connection_back(alice, client_for, upstream_llm, fake_upstream):
    client = client_for(alice)
    for _ in range(3):
        frames_of(infer(client, {**CHAT, "stream": True}))
    infer(client)
    assert len({request.peer for request in fake_upstream.requests}) == 1  # one kept-alive connection


def test_a_crash_report_never_shows_the_key(upstream_llm, monkeypatch, rf):
    """Crash reports built by Django (error mails, reporters) list each frame's locals: not the key."""
    import sys

    from django.views.debug import ExceptionReporter

    from audit.recorder import Caller
    from llms import proxy

    # Made in _resolve_target right after the key is resolved: that frame holds the key as a local then.
    # (Calling None fails there without a frame of its own, which would hold the key as its argument.)
    monkeypatch.setattr(proxy, "Target", None)
    with pytest.raises(TypeError):
        try:
            proxy.chat_completion(Caller(request_id="r"), upstream_llm, CHAT)
        except TypeError:
            report = ExceptionReporter(rf.get("/"), *sys.exc_info()).get_traceback_html()
            raise
    assert "_resolve_target" in report and "api_key" in report
    assert FAKE_KEY not in report


def test_an_unexpected_failure_is_a_500_in_the_contract_shape_and_audited(alice, client_for, upstream_llm,
                                                                          monkeypatch, audit_rows):
    from llms import proxy

    def broken(provider):
        raise RuntimeError(f"bug holding {FAKE_KEY}")

    monkeypatch.setattr(proxy, "get_adapter", broken)  # a bug inside the service, which owns the record
    response = infer(client_for(alice))
    assert response.status_code == 500
    assert error_of(response) == {"message": "Internal server error.", "type": "api_error", "param": None, "code": None}
    [row] = audit_rows()
    assert (row.status, row.outcome) == (500, "error") and FAKE_KEY not in row.error


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/llms/gpt/infer", "/v1/responses"])
def test_a_wrong_method_is_a_405_invalid_request_error(alice, client_for, upstream_llm, audit_rows, path):
    response = client_for(alice).put(path, data="{}", content_type="application/json")
    assert response.status_code == 405
    assert error_of(response)["type"] == "invalid_request_error"  # the client's mistake, as OpenAI types it
    assert [row.status for row in audit_rows()] == [405]
