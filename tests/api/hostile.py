"""Hostile requests for the inference routes (hypothesis strategies) and what every answer to one must be.

The strategies lean on the words the three wire formats use (field names, block and item types, roles), so
that many generated bodies get past the first checks and reach the translators and the provider, where a
body that merely parses could still break something.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st

from audit.models import INFERENCE, AuditEvent

OPENAI, ANTHROPIC = "openai", "anthropic"  # the error shapes


@dataclass(frozen=True)
class Route:
    path: str  # {name}: the Llm in the path
    shape: str
    api: str  # which body strategy fits it: chat, messages, responses

    def url(self, name: str) -> str:
        return self.path.format(name=quote(name, safe="")) if "{name}" in self.path else self.path


ROUTES = (
    Route("/v1/chat/completions", OPENAI, "chat"),
    Route("/api/v1/llms/{name}/infer", OPENAI, "chat"),
    Route("/v1/responses", OPENAI, "responses"),
    Route("/v1/messages", ANTHROPIC, "messages"),
    Route("/v1/messages/count_tokens", ANTHROPIC, "messages"),
)
routes = st.sampled_from(ROUTES)

# The Llms of the `gateway` fixture (gpt: openai, claude: anthropic, both on the fake provider), one the
# caller may not run, and names no Llm can have.
LLM_NAMES = ("gpt", "claude")
names = st.one_of(st.sampled_from((*LLM_NAMES, "nope", "GPT", "gpt ", "")),
                  st.text(st.characters(exclude_characters="/?#"), min_size=1, max_size=12))

# Field names and values the formats use (llms/inbound, llms/adapters).
KEYS = (
    "model", "messages", "input", "instructions", "system", "max_tokens", "max_output_tokens",
    "max_completion_tokens", "stream", "stream_options", "include_usage", "temperature", "top_p", "top_k",
    "n", "stop", "stop_sequences", "tools", "tool_choice", "parallel_tool_calls", "response_format", "text",
    "reasoning", "reasoning_effort", "thinking", "metadata", "user", "store", "include", "truncation",
    "previous_response_id", "conversation", "background", "seed", "logprobs", "top_logprobs", "service_tier",
    "prompt_cache_key", "safety_identifier", "role", "content", "type", "name", "id", "call_id", "arguments",
    "output", "tool_calls", "tool_call_id", "tool_use_id", "function", "parameters", "input_schema",
    "description", "strict", "schema", "json_schema", "format", "source", "image_url", "url", "media_type",
    "data", "file_id", "is_error", "cache_control", "signature", "summary", "effort", "budget_tokens",
    "refusal", "status", "disable_parallel_tool_use", "index",
)
TYPES = (
    "text", "image", "image_url", "tool_use", "tool_result", "thinking", "redacted_thinking", "document",
    "input_text", "input_image", "input_file", "output_text", "refusal", "message", "function_call",
    "function_call_output", "reasoning", "custom_tool_call", "custom_tool_call_output", "item_reference",
    "function", "custom", "web_search", "auto", "any", "none", "required", "tool", "allowed_tools",
    "json_object", "json_schema", "enabled", "disabled", "base64", "url", "ephemeral", "grammar", "summary_text",
)
ROLES = ("user", "assistant", "system", "developer", "tool", "function")

# Strings: short text of any code point but surrogates, the formats' words, lone surrogates (json.dumps
# writes them as \ud800 escapes), NUL and control characters.
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(TYPES + ROLES + KEYS + LLM_NAMES),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),
    st.text(st.sampled_from("\x00\x01\x1f\x7f\u2028\u202e\ufeff\uffff"), min_size=1, max_size=3),
)
numbers = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),  # beyond 64 bits orjson reads a float
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from((0, -0.0, 1, -1, 2**31, 2**53 + 1, 1e308, 5e-324, 10**30)),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12)
anything = st.one_of(texts, json_values)


def fields(required: dict[str, st.SearchStrategy], **optional: st.SearchStrategy) -> st.SearchStrategy:
    """An object with these fields, and some of the optional ones."""
    return st.fixed_dictionaries(required, optional=optional)


# --- bodies each API accepts (so that they reach the translators and the provider), then perturbed

words = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)  # any text but lone surrogates
ident = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,15}", fullmatch=True)
llms = st.sampled_from(LLM_NAMES)
small = st.integers(1, 4096)
unit = st.floats(0, 1)
schema = st.one_of(st.just({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
                   st.just({"type": "object"}), st.builds(lambda name: {"type": "object", "properties": {
                       name: {"type": "array", "items": {"type": "integer"}}}}, ident))
arguments = st.one_of(st.dictionaries(ident, st.one_of(words, small), max_size=2).map(json.dumps), words)
stop = st.one_of(words, st.lists(words, max_size=3))

chat_part = st.one_of(fields({"type": st.just("text"), "text": words}),
                      fields({"type": st.just("image_url"), "image_url": fields({"url": st.sampled_from((
                          "https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="))})}))
chat_content = st.one_of(words, st.lists(chat_part, min_size=1, max_size=2))
tool_call = fields({"id": ident, "type": st.just("function"), "function": fields({"name": ident, "arguments": arguments})})
chat_message = st.one_of(
    fields({"role": st.sampled_from(("system", "developer")), "content": words}),
    fields({"role": st.just("user"), "content": chat_content}, name=ident),
    fields({"role": st.just("assistant")}, content=st.one_of(st.none(), words),
           tool_calls=st.lists(tool_call, min_size=1, max_size=2), reasoning_content=words),
    fields({"role": st.just("tool"), "tool_call_id": ident, "content": chat_content}),
)
chat_tool = fields({"type": st.just("function"), "function": fields({"name": ident}, description=words,
                                                                    parameters=schema, strict=st.booleans())})
CHAT = fields(
    {"model": llms, "messages": st.lists(chat_message, min_size=1, max_size=4)},
    max_tokens=small, max_completion_tokens=small, temperature=unit, top_p=unit, n=st.just(1), stop=stop,
    stream=st.booleans(), stream_options=fields({}, include_usage=st.booleans()), seed=st.integers(),
    tools=st.lists(chat_tool, min_size=1, max_size=2), parallel_tool_calls=st.booleans(),
    tool_choice=st.one_of(st.sampled_from(("auto", "none", "required")),
                          fields({"type": st.just("function"), "function": fields({"name": ident})})),
    response_format=st.one_of(fields({"type": st.sampled_from(("text", "json_object"))}), fields({
        "type": st.just("json_schema"), "json_schema": fields({"name": ident, "schema": schema})})),
    reasoning_effort=st.sampled_from(("low", "medium", "high")), user=words,
    metadata=st.dictionaries(ident, words, max_size=2),
)

text_block = fields({"type": st.just("text"), "text": words},
                    cache_control=st.just({"type": "ephemeral"}))
image_block = fields({"type": st.just("image"), "source": st.one_of(
    fields({"type": st.just("base64"), "media_type": st.just("image/png"), "data": st.just("iVBORw0KGgo=")}),
    fields({"type": st.just("url"), "url": st.just("https://example.com/a.png")}))})
tool_use = fields({"type": st.just("tool_use"), "id": ident, "name": ident,
                   "input": st.dictionaries(ident, st.one_of(words, small), max_size=2)})
tool_result = fields({"type": st.just("tool_result"), "tool_use_id": ident},
                     content=st.one_of(words, st.lists(text_block, max_size=2)), is_error=st.booleans())
thinking = fields({"type": st.just("thinking"), "thinking": words, "signature": words})
MESSAGES = fields(
    {"model": llms, "max_tokens": small, "messages": st.lists(st.one_of(
        fields({"role": st.just("user"), "content": st.one_of(
            words, st.lists(st.one_of(text_block, image_block, tool_result), min_size=1, max_size=3))}),
        fields({"role": st.just("assistant"), "content": st.one_of(
            words, st.lists(st.one_of(text_block, tool_use, thinking), min_size=1, max_size=3))}),
    ), min_size=1, max_size=4)},
    system=st.one_of(words, st.lists(text_block, min_size=1, max_size=2)), stream=st.booleans(),
    temperature=unit, top_p=unit, top_k=small, stop_sequences=st.lists(words, max_size=2),
    tools=st.lists(fields({"name": ident, "input_schema": schema}, description=words), min_size=1, max_size=2),
    tool_choice=st.one_of(fields({"type": st.sampled_from(("auto", "any", "none"))}),
                          fields({"type": st.just("tool"), "name": ident})),
    metadata=fields({}, user_id=words), thinking=fields({"type": st.just("enabled"), "budget_tokens": st.just(1024)}),
)

input_content = st.one_of(words, st.lists(st.one_of(
    fields({"type": st.just("input_text"), "text": words}),
    fields({"type": st.just("input_image"), "image_url": st.just("https://example.com/a.png")},
           detail=st.sampled_from(("auto", "low"))),
), min_size=1, max_size=2))
item = st.one_of(
    fields({"role": st.sampled_from(("user", "system", "developer")), "content": input_content},
           type=st.just("message")),
    fields({"role": st.just("assistant"), "content": st.one_of(words, st.lists(fields(
        {"type": st.just("output_text"), "text": words}), min_size=1, max_size=2))}, type=st.just("message")),
    fields({"type": st.just("function_call"), "call_id": ident, "name": ident, "arguments": arguments}),
    fields({"type": st.just("function_call_output"), "call_id": ident, "output": words}),
    fields({"type": st.just("reasoning"), "summary": st.lists(fields({"type": st.just("summary_text"),
                                                                       "text": words}), max_size=2)},
           id=ident, encrypted_content=words),
)
RESPONSES = fields(
    {"model": llms, "input": st.one_of(words, st.lists(item, min_size=1, max_size=4))},
    instructions=words, max_output_tokens=small, temperature=unit, top_p=unit, stream=st.booleans(),
    tools=st.lists(fields({"type": st.just("function"), "name": ident}, description=words, parameters=schema,
                          strict=st.booleans()), min_size=1, max_size=2),
    tool_choice=st.one_of(st.sampled_from(("auto", "none", "required")),
                          fields({"type": st.just("function"), "name": ident})),
    parallel_tool_calls=st.booleans(), store=st.just(False), metadata=st.dictionaries(ident, words, max_size=2),
    reasoning=fields({}, effort=st.sampled_from(("minimal", "low", "medium", "high")),
                     summary=st.sampled_from(("auto", "concise", "detailed"))),
    text=fields({}, format=st.one_of(fields({"type": st.sampled_from(("text", "json_object"))}), fields(
        {"type": st.just("json_schema"), "name": ident, "schema": schema})), verbosity=st.sampled_from(("low", "high"))),
    include=st.lists(st.sampled_from(("reasoning.encrypted_content", "message.output_text.logprobs")), max_size=1),
    truncation=st.sampled_from(("auto", "disabled")), user=words,
)

# One body of each API with every kind of part, block and item the translators know: the sweep in
# test_hostile_input.py puts anything at each place in them, and the strategies start from them too.
SEED_SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
PNG = "iVBORw0KGgo="
PNG_URL = "data:image/png;base64," + PNG
PNG_SOURCE = {"type": "base64", "media_type": "image/png", "data": PNG}
SEEDS = {
    "chat": {
        "model": "gpt", "max_tokens": 64, "temperature": 0.5, "top_p": 0.9, "n": 1, "stop": ["x", "y"],
        "stream": False, "stream_options": {"include_usage": True}, "user": "u",
        "metadata": {"k": "v"}, "parallel_tool_calls": True,
        "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": SEED_SCHEMA,
                                                    "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "get"}},
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}]},
            {"role": "assistant", "content": "ok", "reasoning_content": "hmm", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a": "b"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "42"}]},
            {"role": "user", "content": "and?", "name": "bob"},
        ],
    },
    "messages": {
        "model": "gpt", "max_tokens": 2048, "temperature": 0.5, "top_p": 0.9,
        "stop_sequences": ["x"], "stream": False, "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "get", "description": "d", "input_schema": SEED_SCHEMA,
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "hi"}, {"type": "image", "source": PNG_SOURCE},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": "b"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False, "content": [
                    {"type": "text", "text": "42"}, {"type": "image", "source": PNG_SOURCE}]},
                {"type": "text", "text": "and?"}]},
        ],
    },
    "responses": {
        "model": "gpt", "instructions": "be brief", "max_output_tokens": 2048, "temperature": 0.5, "top_p": 0.9,
        "stream": False, "store": False, "parallel_tool_calls": True, "metadata": {"k": "v"}, "user": "u",
        "truncation": "disabled", "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low"},
        "tools": [{"type": "function", "name": "get", "description": "d", "parameters": SEED_SCHEMA, "strict": True},
                  {"type": "custom", "name": "patch", "description": "p",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}],
        "tool_choice": {"type": "function", "name": "get"},
        "input": [
            {"type": "message", "role": "developer", "content": "dev"},
            {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                         {"type": "input_image", "image_url": PNG_URL, "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}],
             "encrypted_content": "e"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get", "arguments": '{"a": "b"}'},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "patch", "input": "diff"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"type": "custom_tool_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "done"}]},
            {"role": "user", "content": "and?"},
        ],
    },
}
VALID = {api: st.one_of(st.builds(lambda seed, model: {**seed, "model": model}, st.just(SEEDS[api]), llms), bodies)
         for api, bodies in (("chat", CHAT), ("messages", MESSAGES), ("responses", RESPONSES))}


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """The path of every value inside a body (keys and indexes), the body itself first."""
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += places(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += places(inner, (*path, index))
    return found


DROP = object()  # for changed(): the field or item is removed


def at(body: Any, path: tuple) -> Any:
    """The value at a place of the body."""
    for step in path:
        body = body[step]
    return body


def changed(body: Any, path: tuple, value: Any) -> Any:
    """A copy of the body with `value` at `path` (a place of places()), or that place dropped (DROP)."""
    body = copy.deepcopy(body)
    container, last = at(body, path[:-1]), path[-1]
    if value is DROP:
        del container[last]
    else:
        container[last] = value
    return body


@st.composite
def perturbed(draw, bodies: st.SearchStrategy) -> Any:
    """A valid body with up to three changes, each at any place in it: a value replaced by anything, a
    field or item dropped, a stray field added."""
    body = copy.deepcopy(draw(bodies))  # st.just() values are shared between examples
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(places(body)[1:] or [()]))
        if not path:
            break
        change = draw(st.sampled_from(("replace", "drop", "add")))
        parent = at(body, path[:-1])
        if change == "add" and isinstance(parent, dict):
            parent[draw(keys)] = draw(anything)
        elif change == "add":
            parent.append(draw(anything))
        else:
            body = changed(body, path, DROP if change == "drop" else draw(anything))
    return body


BODIES = {api: perturbed(bodies) for api, bodies in VALID.items()}


def encode(body: Any) -> bytes:
    """The body as a client could send it: JSON, with lone surrogates left as they are (not UTF-8 then)."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


# --- what every answer must be


def inference_rows() -> int:
    return AuditEvent.objects.filter(kind=INFERENCE).count()


def read(response) -> bytes:
    """The whole body; a stream is consumed, and so closed (its audit row is written then)."""
    return b"".join(response.streaming_content) if response.streaming else response.content


STREAM_ENDS = {"chat": b"data: [DONE]\n\n", "messages": b"event: message_stop\n",
               "responses": b"event: response.completed\n"}
STREAM_ERRORS = (b"event: error", b"event: response.failed", b'data: {"error"')
# The contract's error type of each status (any other 4xx: invalid_request_error).
OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                413: "request_too_large", 429: "rate_limit_error", 501: "unsupported_provider"}
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}


def assert_error_shape(route: Route, status: int, data: bytes) -> None:
    """The route's error body: OpenAI's on /v1/chat/completions, /v1/responses and /api/, else Anthropic's."""
    body = json.loads(data)
    if route.shape == OPENAI:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert isinstance(error["message"], str) and isinstance(error["type"], str), body
        assert error["param"] is None or isinstance(error["param"], str), body
        assert error["code"] is None or isinstance(error["code"], str), body
        assert error["type"] == OPENAI_TYPES.get(status, "invalid_request_error"), (status, body)
    else:
        assert set(body) == {"type", "error"} and body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"} and isinstance(body["error"]["message"], str), body
        other = "invalid_request_error" if status < 500 else "api_error"
        assert body["error"]["type"] == ANTHROPIC_TYPES.get(status, other), body


def assert_answered(route: Route, response, *, rows_before: int, method: str = "POST",
                    allowed_5xx: frozenset[int] = frozenset()) -> bytes:
    """Never a server error; the route's error shape on every 4xx; a JSON object or an event stream on a
    200; exactly one audit row for an inference request that reached its view. Returns the body."""
    data = read(response)
    status = response.status_code
    if currently_in_test_context():  # how the examples fell: pytest --hypothesis-show-statistics
        event(f"{method} {route.path} {status}")
    assert status < 500 or status in allowed_5xx, (status, data[:2000])
    assert response.has_header("X-Request-ID")
    if method == "HEAD":
        pass  # no body, whatever the status
    elif status >= 400:
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        assert_error_shape(route, status, data)
    elif method == "POST":
        assert status == 200, (status, data[:2000])
        if response.streaming:
            assert response["Content-Type"].startswith("text/event-stream")
            # It ended as it should, with no error event on the way.
            failed = [line for line in data.split(b"\n") if line.startswith(STREAM_ERRORS)]
            assert STREAM_ENDS[route.api] in data and not failed, data[-2000:]
        else:
            assert isinstance(json.loads(data), dict)
    # One row for each request that reached an inference view, refused ones too: any POST, and any other
    # method the view refused (405, 401). Not for an OPTIONS the view answered, nor for the 426 of
    # GET /v1/responses, a WebSocket refused before the view.
    reached = method == "POST" or (status >= 400 and status != 426)
    assert inference_rows() - rows_before == int(reached), (method, status, data[:500])
    if reached:  # and it holds the status sent
        assert AuditEvent.objects.filter(kind=INFERENCE).latest("id").status == status
    return data
