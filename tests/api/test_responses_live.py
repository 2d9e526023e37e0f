"""POST /v1/responses through a real HTTP server with the official openai SDK as the client: the
passthrough to an openai Llm (byte-exact), the translation for a vllm and an anthropic Llm, a recorded
Codex turn through each, statelessness, failures after the stream began, the WebSocket refusal, audit
rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest
import requests

from audit.models import INFERENCE, AuditEvent
from llms.permissions import grant_run
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import (
    DATA_DIR,
    anthropic_stream_frames,
    json_reply,
    openai_stream_frames,
    responses_object,
    responses_stream_frames,
    sse_frame,
    sse_reply,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(alice, token_for, upstream_llm) -> str:
    return token_for(alice)


@pytest.fixture
def sdk(live_server, token) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=token, max_retries=0, timeout=20) as client:
        yield client


def rows() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=INFERENCE).order_by("id"))


def post(live_server, token: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(f"{live_server.url}/v1/responses", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {token}"}, **kwargs)


def events(response: requests.Response) -> list[dict]:
    """The JSON of each `data:` line of a Responses stream, checked against its `event:` line."""
    found, name = [], None
    for line in response.iter_lines():
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: "):
            event = json.loads(line[6:])
            assert event["type"] == name
            found.append(event)
    return found


def test_the_sdk_creates_a_response_passed_through_unchanged_but_for_model_and_key(sdk, fake_upstream):
    body = {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "instructions": "Be brief.", "store": False, "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k-1", "tools": [{"type": "web_search"}],
            "reasoning": {"effort": "low", "summary": "auto"}}
    response = sdk.responses.create(model="gpt", **body)
    assert response.output_text == "Hello from the fake provider."
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/responses"
    assert sent.json() == {**body, "model": "gpt-4o-mini"}  # hosted tools too: OpenAI serves them
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    [row] = wait_for(rows)
    assert (row.api, row.status, row.outcome, row.llm_name, row.streaming) == ("responses", 200, "ok", "gpt", False)
    assert (row.prompt_tokens, row.completion_tokens) == (11, 6)


def test_the_sdk_stream_accumulates_reasoning_text_and_function_calls(sdk, fake_upstream):
    frames = responses_stream_frames(["The weather", " is fine."], reasoning="**Checking**",
                                     function_calls=[{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
                                     usage={"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
                                            "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 12},
                                            "total_tokens": 1240})
    fake_upstream.reply(sse_reply(frames, interval=0.01))
    with sdk.responses.stream(model="gpt", input="weather?") as stream:
        final = stream.get_final_response()
    assert final.output_text == "The weather is fine."
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[0].encrypted_content == "gAAAAAfake-final"
    assert (final.output[2].name, final.output[2].arguments) == ("get_weather", '{"city":"Paris"}')
    [row] = wait_for(rows)
    assert (row.outcome, row.streaming) == ("ok", True)
    assert (row.prompt_tokens, row.cache_read_tokens, row.completion_tokens) == (1200, 1024, 40)


def test_the_relayed_stream_is_the_providers_bytes(live_server, token, fake_upstream):
    frames = responses_stream_frames(["a", "b"], function_calls=[{"name": "f", "arguments": "{}"}])
    fake_upstream.reply(sse_reply(frames))
    response = post(live_server, token, {"model": "gpt", "input": "x", "stream": True})
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/event-stream"
    assert response.content == "".join(frames).encode()


def test_a_providers_error_event_and_its_failed_response_reach_the_client_as_they_came(live_server, token,
                                                                                      fake_upstream):
    start = responses_stream_frames(["partial"])[:4]
    error = sse_frame({"type": "error", "sequence_number": 4, "code": "server_error", "message": "Boom",
                       "param": None}, "error")
    failed = sse_frame({"type": "response.failed", "sequence_number": 5, "response": {
        **responses_object(status="failed", output=[]), "error": {"code": "server_error", "message": "Boom"}}},
        "response.failed")
    fake_upstream.reply(sse_reply([*start, error, failed]))
    response = post(live_server, token, {"model": "gpt", "input": "x", "stream": True})
    assert response.content == "".join([*start, error, failed]).encode()
    [row] = wait_for(rows)
    assert (row.status, row.outcome) == (200, "error") and "Boom" in row.error


def test_an_error_event_without_its_terminal_event_is_ended_by_mcpd(live_server, token, fake_upstream):
    start = responses_stream_frames(["partial"])[:5]
    error = sse_frame({"type": "error", "sequence_number": 5, "code": "rate_limit_exceeded",
                       "message": "Slow down", "param": None}, "error")
    fake_upstream.reply(sse_reply([*start, error]))
    sent = events(post(live_server, token, {"model": "gpt", "input": "x", "stream": True}))
    assert [e["type"] for e in sent[-2:]] == ["error", "response.failed"]  # the provider's error, mcpd's end
    failed = sent[-1]
    assert failed["sequence_number"] == 6
    assert failed["response"]["id"] == sent[0]["response"]["id"] and failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "rate_limit_exceeded", "message": "Slow down"}
    [row] = wait_for(rows)
    assert row.outcome == "error" and "Slow down" in row.error


def test_a_stream_cut_short_ends_with_response_failed(live_server, token, fake_upstream):
    frames = responses_stream_frames(["one", " two", " three"])
    fake_upstream.reply(sse_reply(frames, drop_after=6))
    sent = events(post(live_server, token, {"model": "gpt", "input": "x", "stream": True}))
    assert [e["sequence_number"] for e in sent] == list(range(8))  # numbered on after the provider's
    assert [e["type"] for e in sent[-2:]] == ["error", "response.failed"]
    assert sent[-2]["code"] == "upstream_stream_incomplete"  # mcpd's code; the Response's is OpenAI's
    assert sent[-1]["response"]["error"]["code"] == "server_error"
    assert sent[-1]["response"]["id"] == sent[0]["response"]["id"]
    [row] = wait_for(rows)
    assert (row.status, row.outcome) == (200, "error") and "dropped the connection" in row.error


def test_the_sdk_reads_mcpds_failed_response(sdk, fake_upstream):
    fake_upstream.reply(sse_reply(responses_stream_frames(["one", " two"]), drop_after=5))
    with sdk.responses.stream(model="gpt", input="x") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.failed"
    with pytest.raises(RuntimeError, match="response.completed"):
        stream.get_final_response()


def test_an_incomplete_response_is_a_terminal_event_and_a_success(live_server, token, fake_upstream):
    fake_upstream.reply(sse_reply(responses_stream_frames(["cut"], status="incomplete")))
    sent = events(post(live_server, token, {"model": "gpt", "input": "x", "stream": True, "max_output_tokens": 16}))
    assert sent[-1]["type"] == "response.incomplete"
    [row] = wait_for(rows)
    assert (row.outcome, row.completion_tokens) == ("ok", 6)


def test_a_client_leaving_mid_stream_closes_the_upstream_and_is_audited_once(live_server, token, fake_upstream):
    fake_upstream.reply(sse_reply(responses_stream_frames([f"w{i} " for i in range(40)]), interval=0.1))
    response = post(live_server, token, {"model": "gpt", "input": "x", "stream": True}, stream=True)
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith(b"event: response.created")
    response.close()
    assert fake_upstream.stream_aborted.wait(5), "mcpd kept reading from the provider after the client left"
    row = wait_for(lambda: AuditEvent.objects.filter(kind=INFERENCE).first())
    time.sleep(0.2)
    assert AuditEvent.objects.filter(kind=INFERENCE).count() == 1
    assert (row.api, row.outcome, row.streaming) == ("responses", "client_disconnected", True)


@pytest.mark.parametrize(("field", "value"), [("previous_response_id", "resp_123"),
                                               ("conversation", "conv_123"), ("background", True)])
def test_state_kept_by_the_server_is_refused_with_the_field_named(live_server, token, fake_upstream, field, value):
    response = post(live_server, token, {"model": "gpt", "input": "x", field: value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", field)
    assert "stateless" in error["message"] or "stores no responses" in error["message"]
    assert fake_upstream.requests == []
    [row] = wait_for(rows)
    assert (row.api, row.status) == ("responses", 400)


def test_store_is_accepted_and_passed_on(sdk, fake_upstream):
    sdk.responses.create(model="gpt", input="x", store=True)
    assert fake_upstream.requests[0].json()["store"] is True


def test_a_providers_429_before_the_stream_keeps_the_openai_shape_and_retry_after(live_server, token, fake_upstream):
    fake_upstream.reply(json_reply({"error": {"message": "Rate limit reached", "type": "requests",
                                              "param": None, "code": "rate_limit_exceeded"}},
                                   status=429, headers={"retry-after": "7"}))
    response = post(live_server, token, {"model": "gpt", "input": "x", "stream": True})
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_the_websocket_transport_is_refused_at_once_without_credentials(live_server):
    started = time.monotonic()
    response = requests.get(f"{live_server.url}/v1/responses", timeout=10,
                            headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert time.monotonic() - started < 2
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "websocket_not_supported"
    assert rows() == []  # not a call


def test_stored_responses_do_not_exist(live_server, token):
    for method, path in [("GET", "resp_123"), ("DELETE", "resp_123"), ("POST", "resp_123/cancel"),
                         ("GET", "resp_123/input_items")]:
        response = requests.request(method, f"{live_server.url}/v1/responses/{path}", timeout=10,
                                    headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "response_not_found"


def test_the_model_list_gives_the_context_window_when_known(sdk, upstream_llm):
    upstream_llm.context_window = 400_000
    upstream_llm.save()
    [model] = sdk.models.list().data
    assert (model.id, model.object, model.context_window) == ("gpt", "model", 400_000)


# --- translated: a vllm Llm (chat.completions) and an anthropic Llm (the Messages API) ---

CODEX_TURN = json.loads((DATA_DIR / "codex_request.json").read_text())
TRANSLATED = [("qwen", "vllm", "/v1/chat/completions"), ("claude", "anthropic", "/v1/messages")]


@pytest.fixture(params=TRANSLATED, ids=[provider for _, provider, _ in TRANSLATED])
def translated(request, make_llm, alice, fake_upstream):
    """An Llm of a provider that does not speak Responses, its name and the path mcpd calls it on."""
    name, provider, path = request.param
    llm = make_llm(name, provider=provider, model=f"{provider}-model", base_url=fake_upstream.url + "/v1",
                   default_max_tokens=32000)
    grant_run(alice, llm)
    return name, path


def test_the_sdk_creates_a_response_on_a_translated_llm(sdk, fake_upstream, translated):
    name, path = translated
    response = sdk.responses.create(model=name, input="Say hello", instructions="Be brief.")
    assert response.output_text == "Hello from the fake provider."
    assert response.model == name and response.status == "completed" and response.usage.input_tokens > 0
    assert fake_upstream.requests[0].path == path
    [row] = wait_for(rows)
    assert (row.api, row.llm_name, row.outcome) == ("responses", name, "ok")
    assert row.prompt_tokens == response.usage.input_tokens


def test_the_sdk_stream_accumulates_a_translated_llms_stream(sdk, fake_upstream, translated):
    name, _ = translated
    with sdk.responses.stream(model=name, input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello from the fake provider."
    assert final.usage.output_tokens > 0
    [row] = wait_for(rows)
    assert (row.outcome, row.streaming, row.completion_tokens) == ("ok", True, final.usage.output_tokens)


def test_a_recorded_codex_turn_through_a_translated_llm(live_server, token, fake_upstream, translated):
    """Codex's whole transcript: instructions, a custom apply_patch tool, encrypted reasoning replayed, a
    function call and its output; the reasoning is dropped (noted in the audit row), the rest translated."""
    name, path = translated
    response = post(live_server, token, {**CODEX_TURN, "model": name}, stream=True)
    assert response.status_code == 200, response.text
    sent = events(response)
    assert sent[0]["type"] == "response.created" and sent[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in sent] == list(range(len(sent)))
    body = fake_upstream.requests[0].json()
    if path == "/v1/chat/completions":
        tools = {tool["function"]["name"] for tool in body["tools"]}
        assert body["messages"][0]["role"] == "system" and body["messages"][0]["content"] == CODEX_TURN["instructions"]
        calls = [call for m in body["messages"] if m["role"] == "assistant" for call in m.get("tool_calls") or []]
        outputs = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    else:
        tools = {tool["name"] for tool in body["tools"]}
        assert CODEX_TURN["instructions"] in [block["text"] for block in body["system"]]
        calls = [block for m in body["messages"] if m["role"] == "assistant" for block in m["content"]
                 if isinstance(block, dict) and block["type"] == "tool_use"]
        outputs = [block["tool_use_id"] for m in body["messages"] if m["role"] == "user" for block in m["content"]
                   if isinstance(block, dict) and block["type"] == "tool_result"]
    assert tools == {"shell_command", "update_plan", "apply_patch"}
    assert len(calls) == 2 and len(outputs) == 2
    assert "encrypted_content" not in json.dumps(body) and "gAAAA" not in json.dumps(body)
    [row] = wait_for(rows)
    assert row.outcome == "ok" and any("reasoning" in note for note in row.detail["notes"])


def test_a_recorded_codex_turn_passes_through_to_an_openai_llm_unchanged(live_server, token, fake_upstream):
    response = post(live_server, token, {**CODEX_TURN, "model": "gpt"})
    assert response.status_code == 200
    assert fake_upstream.requests[0].json() == {**CODEX_TURN, "model": "gpt-4o-mini"}


def test_a_translated_llms_failure_mid_stream_ends_with_response_failed(live_server, token, fake_upstream, translated):
    name, path = translated
    if path == "/v1/chat/completions":
        frames = openai_stream_frames(["Hello", " there", " again"], include_usage=True)
    else:
        frames = anthropic_stream_frames(["Hello", " there", " again"])
    fake_upstream.reply(sse_reply(frames, drop_after=4))
    sent = events(post(live_server, token, {"model": name, "input": "x", "stream": True}))
    assert [e["type"] for e in sent[-2:]] == ["error", "response.failed"]
    assert sent[-2]["code"] == "upstream_stream_incomplete"
    assert sent[-1]["response"]["id"] == sent[0]["response"]["id"]
    assert [e["sequence_number"] for e in sent] == list(range(len(sent)))
    [row] = wait_for(rows)
    assert (row.status, row.outcome) == (200, "error")


def test_a_hosted_tool_is_refused_for_a_translated_llm_naming_it(live_server, token, fake_upstream, translated):
    name, _ = translated
    response = post(live_server, token, {"model": name, "input": "x", "tools": [{"type": "web_search"}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tools[0].type" and "web_search" in error["message"]
    assert fake_upstream.requests == []


def test_a_translated_llms_tool_call_reaches_the_sdk_as_a_function_call(sdk, fake_upstream, make_llm, alice):
    llm = make_llm("qwen", provider="vllm", model="qwen3", base_url=fake_upstream.url + "/v1")
    grant_run(alice, llm)
    call = {"index": 0, "id": "call_w1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    fake_upstream.reply(sse_reply(openai_stream_frames([], finish_reason="tool_calls", include_usage=True,
                                                       tool_calls=[call])))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object",
                                                                       "properties": {"city": {"type": "string"}}}}
    with sdk.responses.stream(model="qwen", input="weather?", tools=[tool]) as stream:
        final = stream.get_final_response()
    [item] = final.output
    assert (item.type, item.call_id, item.name, item.arguments) == ("function_call", "call_w1", "get_weather",
                                                                    '{"city": "Paris"}')
