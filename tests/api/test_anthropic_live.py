"""An anthropic Llm, end to end: the openai SDK through the live server, a loopback fake Anthropic behind."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from audit.models import INFERENCE, AuditEvent
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import json_reply, sse_file_frames, sse_reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["location"]},
}}
ASK = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]


@pytest.fixture
def claude(make_llm, fake_upstream):
    return make_llm("claude", provider="anthropic", model="claude-sonnet-4-5", base_url=fake_upstream.url + "/v1",
                    default_max_tokens=1024)


@pytest.fixture
def sdk(live_server, admin_user, token_for, claude) -> Iterator[openai.OpenAI]:
    # Closed after the test: a kept-alive connection would keep its server thread's database session.
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=token_for(admin_user), max_retries=0,
                       timeout=20) as client:
        yield client


def rows():
    """The inference rows, once the server has finished the response and written its row."""
    return wait_for(lambda: list(AuditEvent.objects.filter(kind=INFERENCE)))


def test_a_completion_is_translated_both_ways(sdk, fake_upstream):
    completion = sdk.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, *ASK])
    assert completion.choices[0].message.content == "Hello from the fake provider."
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 7)
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == FAKE_KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.json()["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert sent.json()["max_tokens"] == 1024 and sent.json()["model"] == "claude-sonnet-4-5"
    [row] = rows()
    assert (row.provider, row.prompt_tokens, row.completion_tokens, row.outcome) == ("anthropic", 12, 7, "ok")


def test_two_streamed_tool_calls_accumulate_into_valid_arguments(sdk, fake_upstream):
    fake_upstream.reply(sse_reply(sse_file_frames("anthropic_parallel_tools.sse"), interval=0.01))
    with sdk.chat.completions.stream(model="claude", messages=ASK, tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"location": "Paris, France", "unit": "celsius"}, {"location": "Tokyo, Japan", "unit": "celsius"}]
    assert calls[0].id != calls[1].id
    sent = fake_upstream.requests[0].json()
    assert sent["stream"] is True and sent["tools"][0]["name"] == "get_weather"
    [row] = rows()
    assert row.streaming and row.outcome == "ok" and row.prompt_tokens and row.completion_tokens


def test_the_tool_results_go_back_as_one_user_turn(sdk, fake_upstream):
    conversation = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Tokyo"}'}},
    ]}, {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "22C"}]
    sdk.chat.completions.create(model="claude", messages=conversation, tools=[WEATHER_TOOL])
    messages = fake_upstream.requests[0].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[1]["content"]] == ["tool_use", "tool_use"]  # no empty text block
    assert [(b["type"], b["tool_use_id"]) for b in messages[2]["content"]] == [
        ("tool_result", "toolu_1"), ("tool_result", "toolu_2")]


def test_a_text_stream_is_relayed_with_the_usage_the_client_asked_for(sdk, fake_upstream):
    fake_upstream.reply(sse_reply(sse_file_frames("anthropic_text.sse"), interval=0.01))
    chunks = list(sdk.chat.completions.create(model="claude", messages=ASK, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How can I help you today?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (21, 12)
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    [row] = rows()
    assert (row.prompt_tokens, row.completion_tokens, row.ttft_ms is not None) == (21, 12, True)


def test_a_stream_cut_by_max_tokens_finishes_with_length(sdk, fake_upstream):
    fake_upstream.reply(sse_reply(sse_file_frames("anthropic_max_tokens.sse")))
    chunks = list(sdk.chat.completions.create(model="claude", messages=ASK, stream=True, max_tokens=16))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]
    assert fake_upstream.requests[0].json()["max_tokens"] == 16


def test_thinking_streams_as_reasoning_content(sdk, fake_upstream):
    fake_upstream.reply(sse_reply(sse_file_frames("anthropic_thinking.sse"), interval=0.01))
    chunks = list(sdk.chat.completions.create(model="claude", messages=ASK, stream=True))
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning and content and reasoning not in content


def test_an_error_event_mid_stream_reaches_the_sdk_as_an_error(sdk, fake_upstream):
    fake_upstream.reply(sse_reply(sse_file_frames("anthropic_overloaded.sse"), interval=0.01))
    with pytest.raises(openai.APIError) as info:
        list(sdk.chat.completions.create(model="claude", messages=ASK, stream=True))
    assert "overloaded" in str(info.value).lower()
    [row] = rows()
    assert (row.status, row.outcome) == (200, "error")  # the status sent; the error says what happened
    assert row.error.startswith("after the stream began: 502 upstream_error")


@pytest.mark.parametrize("status, error_type, expected, sdk_error", [
    (529, "overloaded_error", 502, openai.InternalServerError),
    (401, "authentication_error", 502, openai.InternalServerError),
    (400, "invalid_request_error", 400, openai.BadRequestError),
])
def test_anthropic_errors_map_to_the_contract(sdk, fake_upstream, status, error_type, expected, sdk_error):
    fake_upstream.reply(json_reply({"type": "error", "error": {"type": error_type, "message": "upstream says no"}},
                                   status=status))
    with pytest.raises(sdk_error) as info:
        sdk.chat.completions.create(model="claude", messages=ASK, stream=True)
    assert info.value.status_code == expected


def test_an_anthropic_429_passes_retry_after(sdk, fake_upstream):
    fake_upstream.reply(json_reply({"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
                                   status=429, headers={"retry-after": "11"}))
    with pytest.raises(openai.RateLimitError) as info:
        sdk.chat.completions.create(model="claude", messages=ASK)
    assert info.value.response.headers["retry-after"] == "11"


def test_an_option_anthropic_cannot_honour_is_400(sdk, fake_upstream):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="claude", messages=ASK, n=2)
    assert "'n'" in info.value.body["message"] or "n" in info.value.body["message"]
    assert fake_upstream.requests == []
