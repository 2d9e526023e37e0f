"""Through a real HTTP server (live_server): the official openai SDK, incremental delivery, disconnects."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest
import requests

from audit.models import INFERENCE, AuditEvent
from tests.fakes.upstream import openai_stream_frames, sse_reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(live_server, alice, token_for, upstream_llm) -> Iterator[openai.OpenAI]:
    # Closed after the test: a kept-alive connection would keep its server thread's database session.
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=token_for(alice), max_retries=0,
                       timeout=20) as client:
        yield client


def test_the_openai_sdk_completes(sdk, fake_upstream):
    completion = sdk.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hello from the fake provider."
    assert completion.usage.total_tokens == 15


def test_the_openai_sdk_streams(sdk, fake_upstream):
    stream = sdk.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "Hi"}], stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake provider."
    assert chunks[-1].usage.completion_tokens == 6


def test_the_openai_sdk_lists_models(sdk, make_llm):
    make_llm("not-for-alice")
    assert [m.id for m in sdk.models.list()] == ["gpt"]
    assert sdk.models.retrieve("gpt").owned_by == "openai"


def test_the_openai_sdk_sees_errors_in_the_contract_shape(sdk, fake_upstream):
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["type"] == "permission_error"


def test_the_first_chunk_arrives_while_the_provider_is_still_generating(live_server, alice, token_for,
                                                                         upstream_llm, fake_upstream):
    fake_upstream.reply(sse_reply(openai_stream_frames(["a", "b", "c", "d", "e"]), interval=0.3))
    response = requests.post(f"{live_server.url}/api/v1/llms/gpt/infer", stream=True, timeout=10,
                             headers={"Authorization": f"Bearer {token_for(alice)}"},
                             json={"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    started = time.monotonic()
    lines = response.iter_lines()
    first = next(line for line in lines if line)
    first_at = time.monotonic() - started
    assert first.startswith(b"data: {")
    assert not fake_upstream.stream_completed.is_set()  # the provider has not finished: nothing was buffered
    rest = [line for line in lines if line]
    total = time.monotonic() - started
    assert rest[-1] == b"data: [DONE]"
    assert first_at < total / 2


def test_a_client_leaving_mid_stream_closes_the_upstream_and_is_audited_once(live_server, alice, token_for,
                                                                             upstream_llm, fake_upstream):
    frames = openai_stream_frames([f"w{i} " for i in range(40)])
    fake_upstream.reply(sse_reply(frames, interval=0.1))
    response = requests.post(f"{live_server.url}/v1/chat/completions", stream=True, timeout=10,
                             headers={"Authorization": f"Bearer {token_for(alice)}"},
                             json={"model": "gpt", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith(b"data: ")
    response.close()  # the client goes away
    assert fake_upstream.stream_aborted.wait(5), "mcpd kept reading from the provider after the client left"
    assert not fake_upstream.stream_completed.is_set()
    row = wait_for(lambda: AuditEvent.objects.filter(kind=INFERENCE).first())
    time.sleep(0.2)
    assert AuditEvent.objects.filter(kind=INFERENCE).count() == 1
    assert (row.outcome, row.streaming, row.llm_name) == ("client_disconnected", True, "gpt")
