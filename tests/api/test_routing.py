"""Deployments, retries before the first byte, cool-downs and fallbacks, against two loopback providers.

`gpt`'s own base URL is the fake `first`; its Deployment points at the fake `second`. A retryable failure
(connection refused or reset, 429, 500, 502, 503, 529) of one moves the call to the other; anything else,
or anything after a stream began, goes back to the client as it is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from limits.models import Limit
from llms.models import Deployment, Fallback
from llms.permissions import grant_run
from tests.api.calls import CHAT, error_of, infer, sse_body
from tests.fakes.upstream import (
    FakeUpstream,
    anthropic_stream_frames,
    connection_refused_url,
    json_reply,
    openai_stream_frames,
    responses_stream_frames,
    sse_reply,
)


@pytest.fixture
def second() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def first(fake_upstream) -> FakeUpstream:
    return fake_upstream


@pytest.fixture
def two(llm, first, second, secret, settings) -> Deployment:
    """gpt on `first` (its own fields) and on `second` (a Deployment), equally weighted; the order of
    the attempts fixed by the weights below where a test needs it."""
    settings.RETRY_BUDGET_SECONDS = 5
    llm.base_url = first.url + "/v1"
    llm.save()
    return Deployment.objects.create(llm=llm, base_url=second.url + "/v1", api_key_secret=secret)


def first_goes_first(llm, deployment: Deployment) -> None:
    """Weights that make `first` the first choice (the other is a standby: tried only when it fails)."""
    deployment.weight = 0
    deployment.save()


def chat_calls(fake: FakeUpstream) -> int:
    return sum(1 for request in fake.requests if request.path.endswith("/chat/completions"))


def detail_of(audit_rows) -> dict:
    [row] = audit_rows()
    return row.detail


def metric(client, name: str, **labels) -> float:
    text = client.get("/metrics").content.decode()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(label in line for label in wanted))


def test_calls_are_spread_by_weight(alice, client_for, llm, two, first, second):
    two.weight = 3
    two.save()
    client = client_for(alice)
    for _ in range(200):
        assert infer(client).status_code == 200
    assert chat_calls(first) + chat_calls(second) == 200
    assert 120 <= chat_calls(second) <= 180, (chat_calls(first), chat_calls(second))  # ~150: 3 of every 4


def test_a_503_moves_the_call_to_the_other_deployment(alice, client_for, llm, two, first, second, audit_rows,
                                                      client):
    first_goes_first(llm, two)
    first.reply(json_reply({"error": {"message": "overloaded"}}, status=503))
    before = metric(client, "mcpd_upstream_retries_total", llm="gpt", deployment="0", status="503")
    answer = infer(client_for(alice))
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
    assert (chat_calls(first), chat_calls(second)) == (1, 1)
    detail = detail_of(audit_rows)
    assert detail["deployment"] == str(two.pk)
    assert [(a["deployment"], a["status"]) for a in detail["attempts"]] == [("0", 503), (str(two.pk), 200)]
    assert metric(client, "mcpd_upstream_retries_total", llm="gpt", deployment="0", status="503") == before + 1
    [row] = audit_rows()
    assert row.status == 200 and row.outcome == "ok"


@pytest.mark.parametrize("status", [429, 500, 502, 529])
def test_each_retryable_status_moves_on(alice, client_for, llm, two, first, second, status):
    first_goes_first(llm, two)
    first.reply(json_reply({"error": {"message": "no"}}, status=status))
    assert infer(client_for(alice)).status_code == 200
    assert chat_calls(second) == 1


def test_a_refused_connection_moves_on(alice, client_for, llm, two, second, audit_rows):
    llm.base_url = connection_refused_url() + "/v1"
    llm.save()
    first_goes_first(llm, two)
    assert infer(client_for(alice)).status_code == 200
    assert [a["status"] for a in detail_of(audit_rows)["attempts"]] == [None, 200]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_client_errors_go_back_at_once(alice, client_for, llm, two, first, second, status):
    first_goes_first(llm, two)
    first.reply(json_reply({"error": {"message": "bad request", "type": "invalid_request_error"}}, status=status))
    assert infer(client_for(alice)).status_code >= 400
    assert chat_calls(second) == 0


def test_a_timeout_is_not_retried(alice, client_for, llm, two, first, second, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    first_goes_first(llm, two)
    first.reply(json_reply({"choices": []}, delay=1.0))
    answer = infer(client_for(alice))
    assert answer.status_code == 504 and error_of(answer)["code"] == "upstream_timeout"
    assert chat_calls(second) == 0


def test_a_retry_after_longer_than_the_budget_goes_back_at_once(alice, client_for, llm, two, first, second,
                                                                settings):
    settings.RETRY_BUDGET_SECONDS = 2
    first_goes_first(llm, two)
    first.reply(json_reply({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "30"}))
    answer = infer(client_for(alice))
    assert answer.status_code == 429 and answer["Retry-After"] == "30"
    assert chat_calls(second) == 0


def test_attempts_stop_at_the_llms_maximum(alice, client_for, llm, two, first, second, secret, audit_rows):
    third = Deployment.objects.create(llm=llm, base_url=second.url + "/v1", api_key_secret=secret, weight=0)
    first_goes_first(llm, two)
    llm.max_attempts = 2
    llm.save()
    failing = json_reply({"error": {"message": "down"}}, status=503)
    first.reply(failing)
    second.reply(failing, failing)
    answer = infer(client_for(alice))
    assert answer.status_code == 502  # a provider's 503, as the contract maps it
    assert chat_calls(first) + chat_calls(second) == 2  # not three: max_attempts
    assert len({a["deployment"] for a in detail_of(audit_rows)["attempts"]}) == 2  # never the same one twice
    assert third.pk  # the third deployment was there to be tried


def test_an_only_deployment_is_not_retried_nor_cooled(alice, client_for, llm, first, fake_upstream, counts):
    llm.base_url = first.url + "/v1"
    llm.save()
    first.reply(json_reply({"error": {"message": "down"}}, status=503))
    assert infer(client_for(alice)).status_code == 502
    assert chat_calls(first) == 1 and counts.empty()


def test_a_failed_deployment_cools_down_for_every_worker_then_comes_back(alice, client_for, llm, two, first,
                                                                         second, settings, counts):
    import time

    from llms.routing import forget_cooling

    settings.COOLDOWN_SECONDS = 2
    two.weight = 1
    two.save()
    llm.weight = 1000  # first, almost always, unless it is cooling down
    llm.save()
    first.reply(json_reply({"error": {"message": "down"}}, status=503))
    client = client_for(alice)
    assert infer(client).status_code == 200
    forget_cooling()  # as another worker would: it reads the mark from the store
    first.requests.clear()
    for _ in range(10):
        assert infer(client).status_code == 200
    assert chat_calls(first) == 0 and counts.value(f"cool:{llm.pk}:0") is not None
    time.sleep(3.1)
    for _ in range(5):
        assert infer(client).status_code == 200
    assert chat_calls(first) >= 4  # back once its time is over


def test_a_stream_that_fails_before_its_first_byte_moves_on(alice, client_for, llm, two, first, second):
    first_goes_first(llm, two)
    first.reply(json_reply({"error": {"message": "overloaded"}}, status=503))
    second.reply(sse_reply(openai_stream_frames(["Hel", "lo"])))
    body = sse_body(infer(client_for(alice), {**CHAT, "stream": True})).decode()
    assert '"Hel"' in body and body.endswith("data: [DONE]\n\n")


def test_nothing_is_retried_once_a_stream_has_begun(alice, client_for, llm, two, first, second, audit_rows):
    first_goes_first(llm, two)
    first.reply(sse_reply(openai_stream_frames(["one ", "two ", "three"]), drop_after=2))
    body = sse_body(infer(client_for(alice), {**CHAT, "stream": True})).decode()
    assert '"one "' in body and '"error"' in body  # one mid-stream error, then the end
    assert chat_calls(second) == 0
    [row] = audit_rows()
    assert row.outcome == "error"


def test_messages_and_responses_passthroughs_retry_too(alice, client_for, make_llm, first, second, secret):
    claude = make_llm("claude", provider="anthropic", model="claude-x", base_url=first.url + "/v1", weight=1)
    Deployment.objects.create(llm=claude, base_url=second.url + "/v1", api_key_secret=secret, weight=0)
    codex = make_llm("codex", provider="openai", model="gpt-5", base_url=first.url + "/v1")
    Deployment.objects.create(llm=codex, base_url=second.url + "/v1", api_key_secret=secret, weight=0)
    for each in (claude, codex):
        grant_run(alice, each)
    client = client_for(alice)
    failing = json_reply({"error": {"message": "overloaded"}}, status=529)
    first.reply(failing)
    second.reply(sse_reply(anthropic_stream_frames(["Hi"])))
    messages = client.post("/v1/messages", {"model": "claude", "max_tokens": 10, "stream": True,
                                            "messages": [{"role": "user", "content": "Hi"}]}, format="json")
    assert messages.status_code == 200 and b"message_stop" in sse_body(messages)
    first.reply(json_reply({"error": {"message": "down"}}, status=500))
    second.reply(sse_reply(responses_stream_frames("Hi")))
    responses = client.post("/v1/responses", {"model": "codex", "input": "Hi", "stream": True}, format="json")
    assert responses.status_code == 200 and b"response.completed" in sse_body(responses)
    assert [r.path for r in second.requests] == ["/v1/messages", "/v1/responses"]


# --- fallbacks


@pytest.fixture
def backup(make_llm, second, alice):
    """An anthropic Llm on `second` that gpt falls back to; alice may run gpt only."""
    other = make_llm("backup", provider="anthropic", model="claude-backup", base_url=second.url + "/v1",
                     price_input="1", price_output="2")
    Fallback.objects.create(llm=other.__class__.objects.get(name="gpt"), to=other)
    return other


def test_when_every_deployment_fails_the_fallback_answers_in_the_callers_api(alice, client_for, llm, first, second,
                                                                            backup, audit_rows, client):
    llm.base_url = first.url + "/v1"
    llm.save()
    first.reply(json_reply({"error": {"message": "down"}}, status=503))
    before = metric(client, "mcpd_fallbacks_total", llm="gpt", fallback="backup")
    answer = infer(client_for(alice))
    assert answer.status_code == 200
    assert answer.json()["object"] == "chat.completion"  # translated from the Messages API
    assert [r.path for r in second.requests] == ["/v1/messages"]
    [row] = audit_rows()
    assert (row.llm_name, row.provider, row.model) == ("backup", "anthropic", "claude-backup")
    assert row.detail["fallback_from"] == "gpt" and row.cost is not None  # the fallback's prices
    assert [(a["llm"], a["status"]) for a in row.detail["attempts"]] == [("gpt", 503), ("backup", 200)]
    assert metric(client, "mcpd_fallbacks_total", llm="gpt", fallback="backup") == before + 1


def test_a_fallback_is_not_used_for_an_error_that_is_not_retried(alice, client_for, llm, first, second, backup):
    llm.base_url = first.url + "/v1"
    llm.save()
    first.reply(json_reply({"error": {"message": "bad", "type": "invalid_request_error"}}, status=400))
    assert infer(client_for(alice)).status_code == 400
    assert second.requests == []


def test_the_fallbacks_own_limits_apply_and_the_first_llms_reservation_is_given_back(alice, client_for, llm,
                                                                                   first, second, backup, counts):
    llm.base_url = first.url + "/v1"
    llm.save()
    gpt_limit = Limit.objects.create(user=alice, llm=llm, tokens_per_minute=100_000)
    Limit.objects.create(user=alice, llm=backup, requests_per_minute=1)
    client = client_for(alice)
    first.reply(json_reply({"error": {"message": "down"}}, status=503))
    assert infer(client, {**CHAT, "max_tokens": 500}).status_code == 200
    assert counts.value(f"tpm:{gpt_limit.pk}:") == 0  # gpt's reservation given back: it served nothing
    first.reply(json_reply({"error": {"message": "down"}}, status=503))
    refused = infer(client)
    assert refused.status_code == 429 and error_of(refused)["code"] == "rate_limited"


# --- the catalogue


def test_deploy_undeploy_and_fallback_commands(llm, make_llm, secret, capsys, client_for, alice):
    make_llm("spare", provider="openai", model="m")
    call_command("llm", "deploy", "gpt", "--base-url", "https://eu.example/v1", "--secret", secret.name,
                 "--model", "gpt-4o-eu", "--weight", "3")
    deployment = Deployment.objects.get()
    assert "as deployment" in capsys.readouterr().out and (deployment.model, deployment.weight) == ("gpt-4o-eu", 3)
    call_command("llm", "fallback", "gpt", "--to", "spare")
    listed = client_for(alice).get("/api/v1/llms/gpt/").json()
    assert listed["deployments"] == [{"id": deployment.pk, "base_url": "https://eu.example/v1", "model": "gpt-4o-eu",
                                      "weight": 3, "enabled": True, "has_api_key": True}]
    assert listed["fallbacks"] == ["spare"] and listed["max_attempts"] == 2
    call_command("llm", "undeploy", "gpt", str(deployment.pk))
    call_command("llm", "fallback", "gpt", "--to", "")
    assert not Deployment.objects.exists() and not Fallback.objects.exists()
    for bad in (["deploy", "gpt", "--base-url", "ftp://x"], ["undeploy", "gpt", "999"], ["fallback", "gpt", "--to", "gpt"],
                ["fallback", "gpt", "--to", "nope"], ["deploy", "nope", "--base-url", "https://x.example/v1"]):
        with pytest.raises(CommandError):
            call_command("llm", *bad)


def test_deployment_changes_are_audited_without_credentials(llm, secret):
    from audit.models import AuditEvent

    call_command("llm", "deploy", "gpt", "--base-url", "https://eu.example/v1", "--secret", secret.name)
    [event] = AuditEvent.objects.filter(kind="llm.deployed")
    assert event.detail["secret"] == secret.name and event.detail["base_url"] == "https://eu.example/v1"
    assert "FAKE-KEY" not in json.dumps(event.detail)


def test_spread_counts(alice, client_for, llm, two, first, second):
    """A disabled deployment takes no calls."""
    two.enabled = False
    two.save()
    client = client_for(alice)
    for _ in range(20):
        infer(client)
    assert Counter({"first": chat_calls(first), "second": chat_calls(second)}) == Counter({"first": 20})


def admin_post(client, llm, **inline) -> int:
    from tests.api.test_admin import llm_form

    return client.post(f"/admin/llms/llm/{llm.pk}/change/", llm_form(llm, **inline)).status_code


def test_only_superusers_add_deployments_and_fallbacks_in_the_admin(client, bob, admin_user, llm, make_llm):
    spare = make_llm("spare", provider="openai", model="m")
    inline = {"deployments-TOTAL_FORMS": 1, "deployments-0-base_url": "http://attacker.example/v1",
              "deployments-0-weight": 1, "deployments-0-enabled": "on",
              "fallbacks-TOTAL_FORMS": 1, "fallbacks-0-to": spare.pk, "fallbacks-0-position": 0}
    client.force_login(bob)  # staff with change on Llms
    page = client.get(f"/admin/llms/llm/{llm.pk}/change/").content.decode()
    assert "further deployments" in page.lower() and 'name="deployments-0-base_url"' not in page
    admin_post(client, llm, **inline)
    assert not Deployment.objects.exists() and not Fallback.objects.exists()
    client.force_login(admin_user)
    assert admin_post(client, llm, **inline) == 302
    assert Deployment.objects.get().base_url == "http://attacker.example/v1"
    assert Fallback.objects.get().to == spare
