"""The steady-state hot path: no query before the upstream call, the audit row after the reply,
keep-alive comments during a provider's silence, and what the per-process memory remembers."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from llms.permissions import grant_run, revoke_run
from tests.api.calls import CHAT, infer, rows, sse_body
from tests.fakes.upstream import openai_stream_frames, sse_reply

pytestmark = pytest.mark.django_db


def queries_of(context: CaptureQueriesContext) -> list[str]:
    """The statements run, but the savepoint around the audit INSERT that only a test's transaction gets."""
    return [query["sql"] for query in context.captured_queries if "SAVEPOINT" not in query["sql"]]


@pytest.mark.parametrize("stream", [False, True])
def test_a_steady_state_call_queries_nothing_before_the_upstream_call_and_writes_its_row_and_rollup(
        alice, client_for, upstream_llm, fake_upstream, stream):
    client = client_for(alice)
    first = infer(client, {**CHAT, "stream": stream})  # the first call of this token and Llm looks them up
    if stream:
        sse_body(first)
    seen_at_upstream = []
    with CaptureQueriesContext(connection) as context:
        fake_upstream.on_request = lambda request: seen_at_upstream.append(len(queries_of(context)))
        response = infer(client, {**CHAT, "stream": stream})
        if stream:
            assert sse_body(response).endswith(b"data: [DONE]\n\n")
    assert response.status_code == 200
    assert seen_at_upstream == [0]
    write, rollup = queries_of(context)  # in one transaction (executemany: "1 times: …")
    assert write.startswith('1 times: INSERT INTO "audit_auditevent"')
    # SQLite runs its prepared upsert per key; PostgreSQL gets one statement for the batch's keys
    assert rollup.removeprefix("1 times: ").startswith('INSERT INTO "audit_usageday"') and "ON CONFLICT" in rollup
    assert len(rows()) == 2


@pytest.mark.django_db(transaction=True)
def test_the_audit_row_is_written_after_the_reply_is_sent(live_server, alice, token_for, upstream_llm,
                                                          fake_upstream, monkeypatch):
    import time

    import requests

    from audit import recorder

    real_insert = recorder._insert

    def slow_insert(fields):
        time.sleep(1.0)
        real_insert(fields)

    monkeypatch.setattr(recorder, "_insert", slow_insert)
    started = time.monotonic()
    response = requests.post(f"{live_server.url}/api/v1/llms/gpt/infer", json=CHAT, timeout=10,
                             headers={"Authorization": f"Bearer {token_for(alice)}"})
    answered = time.monotonic() - started
    assert response.status_code == 200 and response.json()["choices"]
    assert answered < 0.8  # the client did not wait for the audit write
    from tests.waiting import wait_for

    assert wait_for(rows)[0].outcome == "ok"


def test_a_revoked_token_is_refused_at_once_in_the_process_that_revoked_it(alice, client_for, token_for,
                                                                          upstream_llm, fake_upstream, settings):
    from mcpd.models import ApiToken

    settings.AUTH_CACHE_SECONDS = 300
    client = client_for(alice)
    assert infer(client).status_code == 200
    token = ApiToken.objects.get(user=alice)
    token.revoked = True
    token.save()
    assert infer(client).status_code == 401


def test_a_withdrawn_grant_takes_effect_at_once_in_the_process_that_withdrew_it(
        alice, client_for, upstream_llm, fake_upstream, settings):
    settings.AUTH_CACHE_SECONDS = 300
    client = client_for(alice)
    assert infer(client).status_code == 200
    revoke_run(alice, upstream_llm)
    assert infer(client).status_code == 403
    grant_run(alice, upstream_llm)
    assert infer(client).status_code == 200


def test_what_changes_behind_the_memos_back_shows_within_the_bound(alice, client_for, upstream_llm, fake_upstream,
                                                                   settings, monkeypatch):
    from mcpd import memo

    settings.AUTH_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr(memo.time, "monotonic", lambda: clock[0])
    client = client_for(alice)
    assert infer(client).status_code == 200
    from llms.models import Llm

    Llm.objects.filter(pk=upstream_llm.pk).update(enabled=False)  # as another host would: no signal here
    assert infer(client).status_code == 200  # remembered
    clock[0] += 5.1
    assert infer(client).status_code == 404


def test_a_silent_provider_gets_keep_alive_comments_to_the_client(alice, client_for, upstream_llm, fake_upstream,
                                                                  settings):
    settings.STREAM_KEEPALIVE_SECONDS = 0.1
    fake_upstream.reply(sse_reply(openai_stream_frames(["Hel", "lo"]), interval=0.45))
    body = sse_body(infer(client_for(alice), {**CHAT, "stream": True}))
    frames = [frame for frame in body.split(b"\n\n") if frame]
    assert frames.count(b": keep-alive") >= 4  # a few during each of the provider's silences
    assert frames[0].startswith(b"data: {") and frames[-1] == b"data: [DONE]"
    chunks = [json.loads(frame[6:]) for frame in frames if frame.startswith(b"data: {")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello"
    [row] = rows()
    assert row.outcome == "ok" and row.ttft_ms < 400  # a comment is not the first token


def test_without_the_memos_an_llm_with_one_deployment_costs_no_query_for_routing(alice, client_for, upstream_llm,
                                                                                 fake_upstream, settings):
    """Whether an Llm has further deployments or fallbacks, and whether any limit exists, comes with the
    query that finds it."""
    settings.AUTH_CACHE_SECONDS = 0
    client = client_for(alice)
    with CaptureQueriesContext(connection) as context:
        assert infer(client).status_code == 200
    selects = [sql for sql in queries_of(context) if sql.startswith("SELECT")]
    assert any(sql.startswith('SELECT "llms_llm".') for sql in selects)  # the Llm, with what it has
    assert not [sql for sql in selects if sql.startswith(('SELECT "llms_deployment".', 'SELECT "llms_fallback".',
                                                          'SELECT "llms_llm"."id", "llms_llm"."name"'))
                and "EXISTS" not in sql], selects
    assert not [sql for sql in selects if sql.startswith('SELECT 1 AS "a" FROM "limits_limit"')], selects
