"""The core every inbound API shares: pure adapters, one vocabulary of upstream failures whatever the
provider, and audit rows that name the API and the cache tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.api.calls import CHAT, error_of, infer, rows, sse_body
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import (
    anthropic_stream_frames,
    connection_refused_url,
    json_reply,
    openai_stream_frames,
    sse_frame,
    sse_reply,
)

pytestmark = pytest.mark.django_db


def test_the_adapters_import_no_django_drf_or_requests():
    code = ("import sys, llms.adapters; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'django', 'rest_framework', 'requests', 'urllib3'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def frames_for(provider: str, pieces: list[str]) -> list[str]:
    return openai_stream_frames(pieces) if provider == "openai" else anthropic_stream_frames(pieces)


def last_error(body: bytes) -> dict:
    return json.loads(body.strip().split(b"\n\n")[-1][len(b"data: "):])["error"]


# (A passthrough relays events as they come, reading only usage: its garbage reaches the client as is.)
@pytest.mark.parametrize("provider, fault, code", [
    ("openai", "drop", "upstream_stream_incomplete"),
    ("anthropic", "drop", "upstream_stream_incomplete"),
    ("openai", "end", "upstream_stream_incomplete"),
    ("anthropic", "end", "upstream_stream_incomplete"),
    ("anthropic", "garbage", "upstream_bad_response"),
])
def test_a_stream_failing_midway_has_one_code_whatever_the_provider(alice, client_for, upstream_llm, fake_upstream,
                                                                    provider, fault, code):
    upstream_llm.provider = provider
    upstream_llm.save()
    frames = frames_for(provider, ["Hello", " there"])
    script = {"drop": sse_reply(frames[:3], drop_after=3),  # the connection goes mid-stream
              "end": sse_reply(frames[:3]),  # a clean end of the body, before the provider said it was done
              "garbage": sse_reply([*frames[:3], "data: {not json\n\n"])}[fault]
    fake_upstream.reply(script)
    body = sse_body(infer(client_for(alice), {**CHAT, "stream": True}))
    assert last_error(body)["code"] == code
    [row] = rows()
    assert row.outcome == "error"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_unreachable_provider_is_upstream_unreachable(alice, client_for, upstream_llm, provider):
    upstream_llm.provider, upstream_llm.base_url = provider, connection_refused_url()
    upstream_llm.save()
    response = infer(client_for(alice))
    assert response.status_code == 502 and error_of(response)["code"] == "upstream_unreachable"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_silent_provider_is_upstream_timeout(alice, client_for, upstream_llm, fake_upstream, settings, provider):
    upstream_llm.provider = provider
    upstream_llm.save()
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    fake_upstream.reply(json_reply({}, delay=1.5))
    response = infer(client_for(alice))
    assert response.status_code == 504 and error_of(response)["code"] == "upstream_timeout"


def test_an_openai_error_event_maps_by_its_type(alice, client_for, upstream_llm, fake_upstream):
    frames = openai_stream_frames(["Hi"])[:2]
    fake_upstream.reply(sse_reply([*frames, sse_frame({"error": {"message": f"slow down {FAKE_KEY}",
                                                                  "type": "rate_limit_error"}})]))
    error = last_error(sse_body(infer(client_for(alice), {**CHAT, "stream": True})))
    assert error["type"] == "rate_limit_error" and FAKE_KEY not in error["message"]


def test_the_row_names_the_api_and_the_cache_tokens_openai_reports(alice, client_for, upstream_llm, fake_upstream):
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
                  "usage": {"prompt_tokens": 1200, "completion_tokens": 5, "total_tokens": 1205,
                            "prompt_tokens_details": {"cached_tokens": 1024}}}
    fake_upstream.reply(json_reply(completion))
    assert infer(client_for(alice)).status_code == 200
    [row] = rows()
    assert (row.api, row.prompt_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        "chat_completions", 1200, 1024, None)


def test_the_row_has_the_cache_tokens_anthropic_reports(alice, client_for, upstream_llm, fake_upstream):
    upstream_llm.provider = "anthropic"
    upstream_llm.save()
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 10, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200,
                         "output_tokens": 5}}
    fake_upstream.reply(json_reply(message))
    assert infer(client_for(alice)).status_code == 200
    [row] = rows()
    assert (row.prompt_tokens, row.cache_read_tokens, row.cache_write_tokens) == (1210, 1000, 200)


@pytest.mark.parametrize("provider, body, param", [
    ("openai", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("openai", {"messages": []}, "messages"),
    ("anthropic", {**CHAT, "logprobs": True}, "logprobs"),
    ("anthropic", {**CHAT, "n": 2}, "n"),
    ("openai", {**CHAT, "max_tokens": -1}, "max_tokens"),
])
def test_a_refused_field_is_named_in_param(alice, client_for, upstream_llm, fake_upstream, provider, body, param):
    upstream_llm.provider = provider
    upstream_llm.save()
    response = infer(client_for(alice), body)
    assert response.status_code == 400 and error_of(response)["param"] == param
    assert fake_upstream.requests == []


def test_an_error_that_is_not_about_a_field_has_a_null_param(alice, client_for, upstream_llm):
    response = client_for(alice).post("/api/v1/llms/gpt/infer", data="not json", content_type="application/json")
    assert response.status_code == 400 and error_of(response)["param"] is None
