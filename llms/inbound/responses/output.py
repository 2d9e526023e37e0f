"""The Response mcpd makes and its output items, one function per kind: what the whole answer and the
stream's events share (the stream sends the same items, built up).

Response object: https://platform.openai.com/docs/api-reference/responses/object
"""

from __future__ import annotations

import re
from typing import Any

from llms.inbound.responses.tables import item_id
from llms.inbound.responses.tools import CUSTOM_INPUT, ChatTool
from mcpd import wirejson

Item = dict[str, Any]


def echo(request: dict[str, Any]) -> dict[str, Any]:
    """The request's configuration as a Response repeats it (with OpenAI's defaults where it said nothing).
    store is false whatever was asked: mcpd keeps nothing."""
    text = request.get("text") if isinstance(request.get("text"), dict) else {}
    reasoning = request.get("reasoning") if isinstance(request.get("reasoning"), dict) else {}
    parallel = request.get("parallel_tool_calls")
    return {
        "background": False,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": None,
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": request.get("safety_identifier"),
        "store": False,
        "temperature": request.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_logprobs": request.get("top_logprobs"),
        "top_p": request.get("top_p"),
        "truncation": request.get("truncation") or "disabled",
        "user": request.get("user"),
    }


def response(base: str, created_at: int, model: str, request: dict[str, Any], *, status: str = "in_progress",
             output: list[Item] | None = None, usage: dict[str, Any] | None = None,
             incomplete: dict[str, str] | None = None, error: dict[str, str] | None = None) -> dict[str, Any]:
    """A Response object; `model` is the Llm's name, as the client called it."""
    body: dict[str, Any] = {"id": f"resp_{base}", "object": "response", "created_at": created_at, "status": status}
    if status == "completed":
        body["completed_at"] = created_at
    body.update({"error": error, "incomplete_details": incomplete, "model": model, "output": output or [],
                 "usage": usage})
    body.update(echo(request))
    return body


# --- items; `status` is the item's ("in_progress" while it streams) ---


def reasoning_item(base: str, index: int, text: str | None) -> Item:
    """A reasoning item: the provider's reasoning as its summary (None: still empty), no encrypted_content
    (only OpenAI makes one). A summary rather than reasoning_text content: clients show summaries and Codex
    replays them (it drops reasoning_text content when it sends an item back), and Claude's thinking is
    itself a summary."""
    return {"id": item_id("reasoning", base, index), "type": "reasoning",
            "summary": [] if text is None else [summary_part(text)]}


def summary_part(text: str) -> dict[str, str]:
    return {"type": "summary_text", "text": text}


def message_item(base: str, index: int, parts: list[dict[str, Any]], status: str = "completed") -> Item:
    """An assistant message of output_text and refusal parts."""
    return {"id": item_id("message", base, index), "type": "message", "status": status, "role": "assistant",
            "content": parts}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def refusal_part(refusal: str) -> dict[str, str]:
    return {"type": "refusal", "refusal": refusal}


def call_item(base: str, index: int, call_id: str, tool: ChatTool, value: str, status: str = "completed") -> Item:
    """A function_call (`value`: its arguments, the JSON text as it came) or, for a custom tool, a
    custom_tool_call (`value`: its input, the one string argument); call_id is the chat tool call's id. A
    namespace's tool is called by its own name, with the namespace."""
    kind = "custom_tool_call" if tool.kind == "custom" else "function_call"
    item = {"id": item_id(kind, base, index), "type": kind, "status": status, "call_id": call_id,
            "name": tool.name, "input" if tool.kind == "custom" else "arguments": value}
    if tool.namespace:
        item["namespace"] = tool.namespace
    return item


def arguments_text(arguments: Any) -> str:
    """A chat call's arguments as text (a few servers send the object itself)."""
    if isinstance(arguments, str):
        return arguments
    return "" if arguments is None else wirejson.dumps(arguments).decode()


def custom_input(arguments: str) -> str:
    """The raw input of a custom tool call from the chat call's arguments: its `input` member; arguments
    cut short give what of it came; arguments that are not that object at all are the raw input as the
    model wrote it (free-form text is what the tool takes)."""
    try:
        value = wirejson.loads(arguments)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return value[CUSTOM_INPUT]
    decoder = InputDecoder()
    prefix = decoder.feed(arguments)
    return prefix if decoder.matched else arguments


class InputDecoder:
    """Decodes the `input` string of a custom tool call's arguments ({"input": "…"}) as its fragments come,
    for the stream's input deltas. Anything else (another key first, not JSON) stops it: the whole input
    then goes in the call's last delta."""

    _PREFIX = ("{", f'"{CUSTOM_INPUT}"', ":", '"')
    _WHITESPACE = " \t\r\n"
    _HEX = re.compile(r"[0-9a-fA-F]{4}")

    def __init__(self) -> None:
        self._raw = ""
        self._at = 0  # where decoding goes on in _raw
        self._token = 0  # tokens of the prefix matched so far
        self._state = "prefix"  # "prefix", "string", "done" or "failed"

    @property
    def matched(self) -> bool:
        """The arguments began as {"input": "… (some of the input may have been decoded)."""
        return self._state in ("string", "done")

    def feed(self, piece: str) -> str:
        """The newly decoded part of the input."""
        self._raw += piece
        if self._state == "prefix":
            self._match_prefix()
        return self._decode() if self._state == "string" else ""

    def _match_prefix(self) -> None:
        raw = self._raw
        while self._token < len(self._PREFIX):
            while self._at < len(raw) and raw[self._at] in self._WHITESPACE:
                self._at += 1
            token = self._PREFIX[self._token]
            have = raw[self._at:self._at + len(token)]
            if not token.startswith(have):
                self._state = "failed"
                return
            if len(have) < len(token):
                return  # more to come
            self._at += len(token)
            self._token += 1
        self._state = "string"

    def _decode(self) -> str:
        """Decode up to the last complete character (an escape is taken whole, a surrogate pair too)."""
        raw, start, at = self._raw, self._at, self._at
        while at < len(raw):
            char = raw[at]
            if char == '"':
                self._state = "done"
                break
            if char != "\\":
                at += 1
                continue
            size = self._escape_size(raw, at)
            if size == 0:
                break  # incomplete: wait for the rest
            at += size
        self._at = at + (1 if self._state == "done" else 0)
        try:
            return wirejson.loads(f'"{raw[start:at]}"')
        except ValueError:
            self._state = "failed"
            return ""

    def _escape_size(self, raw: str, at: int) -> int:
        """The length of the escape at `at`; 0 while it is incomplete."""
        if at + 1 >= len(raw):
            return 0
        if raw[at + 1] != "u":
            return 2
        if not self._HEX.fullmatch(raw[at + 2:at + 6]):
            return 0 if at + 6 > len(raw) else 2  # a malformed escape fails in loads
        if 0xD800 <= int(raw[at + 2:at + 6], 16) <= 0xDBFF:  # a high surrogate needs its low half
            return 12 if at + 12 <= len(raw) else 0
        return 6
