"""POST /v1/messages through a real HTTP server with the official anthropic SDK as the client: the
passthrough to an anthropic Llm (byte-exact), count_tokens, the model list, typed errors, audit rows."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
import requests

from audit.models import INFERENCE, AuditEvent
from llms.permissions import grant_run
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import json_reply, sse_file_frames, sse_frame, sse_reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ASK = {"max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def claude(make_llm, fake_upstream):
    """An anthropic Llm named as Claude Code's model picker wants, on the fake provider."""
    return make_llm("claude-sonnet-4-6", provider="anthropic", model="claude-sonnet-4-5-20250929",
                    base_url=fake_upstream.url + "/v1")


@pytest.fixture
def token(alice, token_for, claude) -> str:
    grant_run(alice, claude)
    return token_for(alice)


@pytest.fixture
def sdk(live_server, token) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=live_server.url, api_key=token, max_retries=0, timeout=20) as client:
        yield client


def rows() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=INFERENCE).order_by("id"))


def test_the_sdk_creates_a_message_passed_through_unchanged_but_for_model_and_key(sdk, fake_upstream):
    message = sdk.messages.create(model="claude-sonnet-4-6", system=[{"type": "text", "text": "Be brief.",
                                                                      "cache_control": {"type": "ephemeral"}}],
                                  extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015",
                                                                                "keep": "all"}]}},
                                  **ASK)
    assert message.content[0].text == "Hello from the fake provider."
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.json() == {**ASK, "model": "claude-sonnet-4-5-20250929",
                           "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                           "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}
    assert sent.headers["x-api-key"] == FAKE_KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers  # the client's mcpd token stays with mcpd
    [row] = wait_for(rows)
    assert (row.api, row.status, row.outcome, row.llm_name) == ("messages", 200, "ok", "claude-sonnet-4-6")
    assert (row.prompt_tokens, row.completion_tokens) == (12, 7)


def test_anthropic_beta_goes_upstream_byte_for_byte(sdk, fake_upstream):
    betas = ["claude-code-20250219", "context-management-2025-06-27", "effort-2025-11-24"]
    sdk.beta.messages.create(model="claude-sonnet-4-6", betas=betas, **ASK)
    assert fake_upstream.requests[0].headers["anthropic-beta"] == ",".join(betas)


@pytest.mark.parametrize("recording", ["anthropic_thinking.sse", "anthropic_parallel_tools.sse"])
def test_the_sdk_stream_accumulates_what_the_provider_sent(sdk, fake_upstream, recording):
    fake_upstream.reply(sse_reply(sse_file_frames(recording)))
    with sdk.messages.stream(model="claude-sonnet-4-6", **ASK) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    if recording == "anthropic_thinking.sse":
        assert kinds[0] == "thinking" and final.content[0].thinking and final.content[0].signature
    else:
        calls = [block for block in final.content if block.type == "tool_use"]
        assert [call.input for call in calls] == [{"location": "Paris, France", "unit": "celsius"},
                                                 {"location": "Tokyo, Japan", "unit": "celsius"}]
    [row] = wait_for(rows)
    assert row.outcome == "ok" and row.completion_tokens == final.usage.output_tokens


def test_the_relayed_stream_is_the_providers_bytes(live_server, token, fake_upstream):
    frames = sse_file_frames("anthropic_parallel_tools.sse")
    fake_upstream.reply(sse_reply(frames))
    response = requests.post(f"{live_server.url}/v1/messages?beta=true", json={**ASK, "model": "claude-sonnet-4-6",
                                                                               "stream": True},
                             headers={"x-api-key": token, "anthropic-version": "2023-06-01"}, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/event-stream"
    assert response.content == "".join(frames).encode()
    [row] = wait_for(rows)
    assert (row.prompt_tokens, row.cache_read_tokens, row.cache_write_tokens) == (18 + 1024, 1024, 0)


def test_a_providers_error_event_reaches_the_client_as_it_came_and_is_audited(live_server, token, fake_upstream):
    start = sse_file_frames("anthropic_text.sse")[:2]
    failure = sse_frame({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    fake_upstream.reply(sse_reply([*start, failure]))
    response = requests.post(f"{live_server.url}/v1/messages", json={**ASK, "model": "claude-sonnet-4-6",
                                                                     "stream": True},
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.content == "".join([*start, failure]).encode()
    [row] = wait_for(rows)
    assert row.outcome == "error" and "overloaded" in row.error


def test_count_tokens_is_passed_to_an_anthropic_llm(sdk, fake_upstream):
    counted = sdk.messages.count_tokens(model="claude-sonnet-4-6", messages=ASK["messages"])
    assert counted.input_tokens > 0
    assert fake_upstream.requests[0].path == "/v1/messages/count_tokens"
    assert fake_upstream.requests[0].json()["model"] == "claude-sonnet-4-5-20250929"
    [row] = wait_for(rows)
    assert (row.api, row.status, row.prompt_tokens) == ("count_tokens", 200, None)  # nothing billed


def test_count_tokens_is_501_for_other_providers(live_server, alice, token_for, upstream_llm, fake_upstream):
    with anthropic.Anthropic(base_url=live_server.url, api_key=token_for(alice), max_retries=0) as client, \
            pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.count_tokens(model="gpt", messages=ASK["messages"])
    assert caught.value.status_code == 501
    assert caught.value.body["type"] == "error" and "anthropic" in caught.value.body["error"]["message"]
    assert fake_upstream.requests == []
    assert [row.status for row in wait_for(rows)] == [501]


def test_the_sdk_lists_models_in_anthropics_shape(sdk, make_llm, claude):
    make_llm("not-for-alice", provider="anthropic")
    page = sdk.models.list(limit=10)
    assert [model.id for model in page.data] == ["claude-sonnet-4-6", "gpt"]  # newest first, alice's only
    assert page.data[0].type == "model" and page.data[0].created_at
    assert sdk.models.retrieve("claude-sonnet-4-6").id == "claude-sonnet-4-6"


def test_the_openai_list_shape_is_kept_without_anthropic_version(live_server, token):
    listed = requests.get(f"{live_server.url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert listed.json()["object"] == "list" and listed.json()["data"][0]["object"] == "model"


@pytest.mark.parametrize("reply, error_class, status", [
    (json_reply({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, status=429,
                headers={"retry-after": "7"}), anthropic.RateLimitError, 429),
    (json_reply({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, status=529),
     anthropic.APIStatusError, 529),
    (json_reply({"type": "error", "error": {"type": "api_error", "message": "boom"}}, status=500),
     anthropic.InternalServerError, 502),
    (json_reply({"type": "error", "error": {"type": "invalid_request_error",
                                            "message": "prompt is too long: 210000 tokens > 200000 maximum"}},
                status=400), anthropic.BadRequestError, 400),
    (json_reply({"type": "error", "error": {"type": "authentication_error", "message": f"bad key {FAKE_KEY}"}},
                status=401), anthropic.InternalServerError, 502),
])
def test_provider_errors_reach_the_sdk_typed_in_anthropics_shape(sdk, fake_upstream, reply, error_class, status):
    fake_upstream.reply(reply)
    with pytest.raises(error_class) as caught:
        sdk.messages.create(model="claude-sonnet-4-6", **ASK)
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"type", "error"} and caught.value.body["type"] == "error"
    assert FAKE_KEY not in caught.value.response.text
    if status == 400:
        assert "prompt is too long" in caught.value.body["error"]["message"]  # what Claude Code compacts on
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
    if status == 529:
        assert caught.value.body["error"]["type"] == "overloaded_error"


def refusal(live_server, key: str, **call):
    """The error the SDK raises for this call (every status has its class)."""
    with anthropic.Anthropic(base_url=live_server.url, api_key=key, max_retries=0) as client:
        try:
            client.messages.create(**{**ASK, "model": "claude-sonnet-4-6", **call})
        except anthropic.APIStatusError as error:
            return error
    raise AssertionError("the call was not refused")


def test_mcpds_own_refusals_reach_the_sdk_typed(live_server, token, carol, token_for, claude, admin_user):
    assert isinstance(refusal(live_server, "mcpd_not-a-token"), anthropic.AuthenticationError)
    denied = refusal(live_server, token_for(carol))
    assert isinstance(denied, anthropic.PermissionDeniedError) and denied.body["error"]["type"] == "permission_error"
    assert isinstance(refusal(live_server, token_for(admin_user), model="no-such-llm"), anthropic.NotFoundError)
    assert isinstance(refusal(live_server, token, messages="not a list"), anthropic.BadRequestError)
    assert sorted(row.status for row in wait_for(lambda: len(rows()) >= 4 and rows())) == [400, 401, 403, 404]
    assert {row.api for row in rows()} == {"messages"}


def test_claude_codes_connection_probes_answer(live_server):
    assert requests.head(f"{live_server.url}/", timeout=5).status_code == 200
    assert requests.head(f"{live_server.url}/api/hello", timeout=5).status_code == 200


# --- to an openai-compatible Llm: translated through chat.completions and back


@pytest.fixture
def gpt_sdk(live_server, alice, token_for, upstream_llm) -> Iterator[anthropic.Anthropic]:
    """The anthropic SDK calling `gpt`, an openai Llm on the fake provider."""
    with anthropic.Anthropic(base_url=live_server.url, api_key=token_for(alice), max_retries=0, timeout=20) as client:
        yield client


def test_the_sdk_gets_a_message_from_an_openai_llm(gpt_sdk, fake_upstream):
    message = gpt_sdk.messages.create(model="gpt", system="Be brief.", stop_sequences=["END"], **ASK)
    assert message.content[0].text == "Hello from the fake provider." and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 6)
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.json() == {"model": "gpt-4o-mini", "max_completion_tokens": 256, "stop": ["END"],
                           "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hello"}]}
    [row] = wait_for(rows)
    assert (row.api, row.provider, row.prompt_tokens, row.completion_tokens) == ("messages", "openai", 9, 6)


@pytest.mark.parametrize("recording", ["chat_parallel_tools.sse", "chat_reasoning.sse"])
def test_the_sdk_stream_accumulates_a_translated_chat_stream(gpt_sdk, fake_upstream, recording):
    fake_upstream.reply(sse_reply(sse_file_frames(recording), interval=0.01))
    with gpt_sdk.messages.stream(model="gpt", **ASK) as stream:
        final = stream.get_final_message()
    if recording == "chat_parallel_tools.sse":
        calls = [block for block in final.content if block.type == "tool_use"]
        assert final.content[0].type == "text" and final.content[0].text.startswith("Okay, let's check")
        assert [call.input for call in calls] == [{"location": "Boston, MA"}, {"location": "Paris, FR", "unit": "celsius"}]
        assert final.stop_reason == "tool_use"
    else:
        assert [block.type for block in final.content] == ["thinking", "text"]
        assert "10,800 + 1,350 + 81 = 12,231." in final.content[0].thinking
        assert final.content[1].text == "27 * 453 = 12,231"
    [row] = wait_for(rows)
    assert row.outcome == "ok" and row.completion_tokens == final.usage.output_tokens


def test_a_provider_failure_mid_stream_is_one_anthropic_error_event(live_server, alice, token_for, upstream_llm,
                                                                   fake_upstream):
    fake_upstream.reply(sse_reply(sse_file_frames("chat_text.sse")[:3], drop_after=3))
    response = requests.post(f"{live_server.url}/v1/messages", json={**ASK, "model": "gpt", "stream": True},
                             headers={"x-api-key": token_for(alice)}, timeout=10)
    frames = [frame for frame in response.content.split(b"\n\n") if frame]
    assert frames[0].startswith(b"event: message_start")
    assert frames[-1].startswith(b"event: error\ndata: ") and b"message_stop" not in response.content
    assert b'"type":"error"' in frames[-1]
    [row] = wait_for(rows)
    assert row.outcome == "error" and row.error.startswith("after the stream began: 502")


@pytest.mark.parametrize("llm_name", ["claude-sonnet-4-6", "gpt"])
def test_a_recorded_claude_code_request_works_through_both_paths(live_server, token, fake_upstream, llm_name,
                                                                 upstream_llm):
    import json
    from pathlib import Path

    recorded = json.loads((Path(__file__).parents[1] / "data" / "claude_code_request.json").read_text())
    response = requests.post(f"{live_server.url}/v1/messages?beta=true", json={**recorded, "model": llm_name},
                             headers={"Authorization": f"Bearer {token}", "anthropic-version": "2023-06-01",
                                      "anthropic-beta": "claude-code-20250219,context-management-2025-06-27"},
                             timeout=10)
    assert response.status_code == 200, response.text
    events = [frame.split(b"\n", 1)[0] for frame in response.content.split(b"\n\n") if frame]
    assert events[0] == b"event: message_start" and events[-1] == b"event: message_stop"
    sent = fake_upstream.requests[0].json()
    if llm_name == "gpt":  # translated: what a chat provider takes
        assert sent["messages"][0]["role"] == "system" and sent["tools"][0]["type"] == "function"
        assert "thinking" not in sent and "context_management" not in sent
    else:  # passthrough: exactly what Claude Code sent, but the model
        assert sent == {**recorded, "model": "claude-sonnet-4-5-20250929"}
