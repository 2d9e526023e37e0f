"""What mcpd lets through to and from providers: no redirects, no cookies, no echo of the key, no 500
from hostile JSON or odd secrets.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.api.calls import CHAT, error_of, infer, rows, sse_body
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import (
    FakeUpstream,
    anthropic_stream_frames,
    json_reply,
    openai_stream_frames,
    raw_reply,
    sse_frame,
    sse_reply,
)

pytestmark = pytest.mark.django_db


# --- 2. redirects are never followed


@pytest.fixture
def elsewhere():
    with FakeUpstream() as fake:
        yield fake


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_redirect_is_a_502_and_is_not_followed(alice, client_for, upstream_llm, fake_upstream,
                                                          elsewhere, provider, stream):
    upstream_llm.provider = provider
    upstream_llm.save()
    fake_upstream.reply(json_reply({"moved": True}, status=302, headers={"Location": f"{elsewhere.url}/steal"}))
    response = infer(client_for(alice), {**CHAT, "stream": stream})
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_bad_response"
    assert "redirect" in error_of(response)["message"] and elsewhere.url not in response.content.decode()
    assert elsewhere.requests == [] and len(fake_upstream.requests) == 1
    assert rows()[0].status == 502


def test_a_redirect_loop_costs_one_upstream_call(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(*[json_reply({}, status=307, headers={"Location": f"{fake_upstream.url}/v1/chat/completions"})]
                        * 5)
    assert infer(client_for(alice)).status_code == 502
    assert len(fake_upstream.requests) == 1


def test_vault_redirects_are_not_followed(alice, client_for, upstream_llm, fake_upstream, elsewhere, settings):
    settings.VAULT_ADDR, settings.VAULT_TOKEN = fake_upstream.url, "test-vault-token"
    secret = upstream_llm.api_key_secret
    secret.backend, secret.ref, secret.encrypted_value = "vault", "kv/llm#key", ""
    secret.save()
    elsewhere.vault["kv/llm"] = {"key": "sk-from-elsewhere"}
    fake_upstream.vault_redirect = elsewhere.url
    response = infer(client_for(alice))
    assert response.status_code == 502 and error_of(response)["code"] == "secret_unavailable"
    assert elsewhere.requests == []  # X-Vault-Token went nowhere else


# --- 5. no cookie jar shared between users and providers


def test_upstream_calls_carry_no_cookies(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(json_reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]},
                                   headers={"Set-Cookie": "session=alice-secret; Path=/"}))
    client = client_for(alice)
    infer(client)
    infer(client)
    assert "Cookie" not in fake_upstream.requests[1].headers


# --- 8. the key, however the provider echoes it


@pytest.mark.parametrize("retry_after, relayed", [
    ("7", "7"),
    (f"7 {FAKE_KEY}", None),
    (FAKE_KEY, None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
    (f"Wed, 21 Oct 2015 07:28:00 {FAKE_KEY}", "Wed, 21 Oct 2015 07:28:00 GMT"),
])
def test_only_a_well_formed_retry_after_is_relayed(alice, client_for, upstream_llm, fake_upstream, retry_after,
                                                   relayed):
    fake_upstream.reply(json_reply({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": retry_after}))
    response = infer(client_for(alice))
    assert response.status_code == 429 and response.get("Retry-After") == relayed


ECHOES = {
    "upper case": FAKE_KEY.upper(),
    "its middle": FAKE_KEY[9:27],
    "base64 in basic auth": base64.b64encode(f"user:{FAKE_KEY}".encode()).decode(),
    "url-safe base64": base64.urlsafe_b64encode(FAKE_KEY.encode()).decode(),
}


def assert_no_echo(*texts: str) -> None:
    for text in texts:
        assert FAKE_KEY.lower() not in text.lower()
        for how, echo in ECHOES.items():
            assert echo[4:-4] not in text, how


@pytest.mark.parametrize("status", [400, 500, 503])
def test_transformed_echoes_of_the_key_reach_neither_client_nor_audit(alice, client_for, upstream_llm,
                                                                      fake_upstream, status):
    fake_upstream.reply(json_reply({"error": {"message": "key was " + " / ".join(ECHOES.values())}}, status=status))
    response = infer(client_for(alice))
    [row] = rows()
    assert_no_echo(response.content.decode(), row.error)
    assert "[redacted]" in response.content.decode() + row.error


@pytest.mark.parametrize("frame", [
    '{ "error": {"message": "bad key %s", "type": "server_error"}}',
    '{"object": "error", "message": "bad key %s", "type": "BadRequestError", "code": 400}',
    '{"id": "x", "object": "chat.completion.chunk", "error": {"message": "bad key %s"}}',
])
def test_mid_stream_errors_of_any_shape_are_mapped_and_scrubbed(alice, client_for, upstream_llm, fake_upstream,
                                                                frame):
    first = openai_stream_frames(["Hi"])[:2]
    fake_upstream.reply(sse_reply([*first, sse_frame(frame % FAKE_KEY.upper())]))
    body = sse_body(infer(client_for(alice), {**CHAT, "stream": True}))
    last = json.loads(body.strip().split(b"\n\n")[-1][len(b"data: "):])
    assert set(last) == {"error"} and last["error"]["type"] == "upstream_error"
    [row] = rows()
    assert_no_echo(body.decode(), row.error)
    assert row.outcome == "error"


def test_the_exact_key_is_removed_from_relayed_answers(alice, client_for, upstream_llm, fake_upstream):
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"your key is {FAKE_KEY}"}}]}
    fake_upstream.reply(json_reply(completion), sse_reply(openai_stream_frames(["key: ", FAKE_KEY, "!"])))
    client = client_for(alice)
    plain = infer(client)
    streamed = sse_body(infer(client, {**CHAT, "stream": True}))
    assert plain.status_code == 200 and plain.json()["choices"][0]["message"]["content"] == "your key is [redacted]"
    assert FAKE_KEY.encode() not in streamed and b"[redacted]" in streamed


def test_the_key_is_removed_from_a_translated_stream(alice, client_for, upstream_llm, fake_upstream):
    upstream_llm.provider = "anthropic"
    upstream_llm.save()
    fake_upstream.reply(sse_reply(anthropic_stream_frames(["the key ", FAKE_KEY])))
    streamed = sse_body(infer(client_for(alice), {**CHAT, "stream": True}))
    assert FAKE_KEY.encode() not in streamed and b"[redacted]" in streamed


# --- 9. inputs that gave 500


@pytest.mark.parametrize("raw", [
    b"[" * 100000,
    b'{"messages": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    b'{"messages": [{"role": "user", "content": "x"}], "temperature": Infinity}',
    b'{"messages": [{"role": "user", "content": "x"}], "temperature": -Infinity}',
    b'{"messages": [{"role": "user", "content": "x"}], "top_p": 1e999}',
    b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"messages": [{"role": "user", "content": "\xff"}]}',
    # Read (orjson reads 1024 levels) but deeper than it writes (254): the call upstream raised TypeError.
    b'{"messages": [{"role": "user", "content": "x"}], "metadata": ' + b"[" * 300 + b"]" * 300 + b"}",
    b'{"messages": [{"role": "user", "content": "x"}], "metadata": ' + b"[" * 129 + b"]" * 129 + b"}",
])
def test_hostile_json_is_a_400_even_without_run(carol, client_for, upstream_llm, fake_upstream, raw):
    response = client_for(carol).post("/v1/chat/completions", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in error_of(response)["message"]
    assert fake_upstream.requests == []
    assert [r.status for r in rows()] == [400]


WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
PATCH = {"type": "custom", "name": "patch",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}


@pytest.mark.parametrize("route, body", [
    ("/v1/chat/completions", {"model": "gpt", "messages": [{"role": ["user"], "content": "x"}]}),
    ("/v1/messages", {"model": "gpt", "max_tokens": 8, "messages": [{"role": {}, "content": "x"}]}),
    ("/v1/responses", {"model": "gpt", "input": "x", "include": [["reasoning.encrypted_content"]]}),
    ("/v1/responses", {"model": "gpt", "input": "x", "reasoning": {"effort": ["low"]}}),
    ("/v1/responses", {"model": "gpt", "input": "x",
                       "tools": [{**PATCH, "format": {**PATCH["format"], "syntax": []}}]}),
    ("/v1/responses", {"model": "gpt", "input": "x", "tools": [WEATHER],
                       "tool_choice": {"type": "function", "name": ["weather"]}}),
    ("/v1/responses", {"model": "gpt", "input": "x", "tools": [WEATHER], "tool_choice": {
        "type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": {}}]}}),
    ("/v1/responses", {"model": "gpt", "input": [{"type": ["message"], "role": "user", "content": "x"}]}),
    ("/v1/responses", {"model": "gpt", "input": [{"type": "message", "role": {"user": 1}, "content": "x"}]}),
])
def test_a_list_or_an_object_where_a_word_belongs_is_a_400(alice, client_for, upstream_llm, fake_upstream, route,
                                                          body):
    """Each was looked up in a set or a dict: TypeError (unhashable), a 500."""
    upstream_llm.provider = "vllm"  # the Responses API through its translation to chat
    upstream_llm.save()
    response = client_for(alice).post(route, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and fake_upstream.requests == []
    assert [r.status for r in rows()] == [400]


def test_deeply_nested_tool_arguments_are_a_400_for_anthropic(alice, client_for, upstream_llm, fake_upstream):
    upstream_llm.provider = "anthropic"
    upstream_llm.save()
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "[" * 5000 + "]" * 5000}}
    body = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}
    response = infer(client_for(alice), body)
    assert response.status_code == 400 and fake_upstream.requests == []


def test_a_file_secret_that_is_not_utf8_is_502_secret_unavailable(alice, client_for, upstream_llm, tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"sk-\xff\xfe-latin1")
    secret = upstream_llm.api_key_secret
    secret.backend, secret.ref, secret.encrypted_value = "file", str(path), ""
    secret.save()
    response = infer(client_for(alice))
    assert response.status_code == 502 and error_of(response)["code"] == "secret_unavailable"
    assert "UTF-8" in rows()[0].error


@pytest.mark.parametrize("value", ["sk-good\r\nX-Injected: 1", "sk-ключ"])
def test_a_secret_that_cannot_go_in_a_header_is_502_secret_unavailable(alice, client_for, upstream_llm,
                                                                       fake_upstream, value):
    secret = upstream_llm.api_key_secret
    secret.set_value(value)
    secret.save()
    response = infer(client_for(alice))
    assert response.status_code == 502 and error_of(response)["code"] == "secret_unavailable"
    assert fake_upstream.requests == []


def test_a_provider_reply_that_is_not_strict_json_is_a_502(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(raw_reply(b'{"choices": [], "x": NaN}'))
    assert infer(client_for(alice)).status_code == 502
