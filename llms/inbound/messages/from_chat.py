"""A chat provider's answer -> the Anthropic Messages API's: a chat.completion -> a Message, a
chat.completion.chunk stream -> Anthropic stream events (WIRE-FORMATS §7.1).

Chat answer:      https://platform.openai.com/docs/api-reference/chat/object (and /chat-streaming)
Anthropic answer: https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/api/messages-streaming
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from llms.adapters.anthropic.tables import UNKNOWN_STOP_REASON, anthropic_usage, stop_reason_of
from llms.adapters.base import OutChunk, SseEvent, StreamTranslator, Usage
from llms.adapters.chat import reasoning_of
from llms.adapters.errors import bad_response, event_json
from llms.adapters.passthrough import usage_of
from llms.inbound.messages.errors import error_body
from llms.inbound.tool_calls import StreamedCall
from llms.streaming import Event
from mcpd import wirejson
from mcpd.errors import ApiError

log = logging.getLogger(__name__)

PROVIDER = "openai-compatible"  # how the provider is named in a bad_response
PING = Event(name="ping", data=b'{"type":"ping"}')


def message_id(completion_id: Any) -> str:
    """A "msg_…" id derived from the chat.completion's id (or a new one)."""
    if isinstance(completion_id, str) and completion_id:
        return "msg_" + completion_id.removeprefix("chatcmpl-")
    return f"msg_{uuid.uuid4().hex}"


def new_tool_use_id() -> str:
    """An id for a tool call the provider gave none."""
    return f"toolu_{uuid.uuid4().hex}"


def text_of(message: dict[str, Any]) -> str:
    """The answer text of a chat message or delta: its content, and a refusal (also what the model said)."""
    return "".join(value for value in (message.get("content"), message.get("refusal")) if isinstance(value, str))


def stop_reason(finish_reason: Any, called_tools: bool) -> str:
    """Anthropic's stop_reason for a chat finish_reason (tool_use whenever a tool was called)."""
    mapped = stop_reason_of(finish_reason if isinstance(finish_reason, str) else None, called_tools)
    if mapped is None:
        log.warning("chat finish_reason %r mapped to %r", finish_reason, UNKNOWN_STOP_REASON)
        return UNKNOWN_STOP_REASON
    return mapped


# --- a whole answer ---


def message_from_chat(completion: dict[str, Any], *, model: str, provider: str = PROVIDER) -> dict[str, Any]:
    """The Anthropic Message for a chat.completion; `model` is the name the client called."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise bad_response(provider, "a reply that is not a chat.completion")
    content: list[dict[str, Any]] = []
    thinking = reasoning_of(message)
    if thinking:  # no signature: Anthropic's API would refuse it back, a chat provider never sees it
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = text_of(message)
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_response(provider, "a chat.completion whose tool_calls are not a list")
    content.extend(tool_use_block(call, provider) for call in calls)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), bool(calls)),
        "stop_sequence": None,  # OpenAI does not say which stop sequence matched
        "usage": anthropic_usage(usage_of(completion)),
    }


def tool_use_block(call: Any, provider: str) -> dict[str, Any]:
    """A tool_use block for a chat tool call; `input` is its parsed arguments."""
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise bad_response(provider, "a tool call without a function name")
    call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else new_tool_use_id()
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input(function.get("arguments"),
                                                                                 call_id, provider)}


def tool_input(arguments: Any, call_id: str, provider: str) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` is.

    No arguments (absent, "" or blank: servers send that for a call without parameters) are {}.
    Arguments that are not a JSON object make the whole reply a 502 (bad_response): an Anthropic input
    must be an object, and mcpd does not guess what the model meant, which could run a tool with an
    input it was never given. (Streamed, the fragments go out as they come, as input_json_delta, and the
    client's parser judges them, as it does Anthropic's own.)
    """
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    value: Any = arguments  # a few servers send the object itself
    if isinstance(arguments, str):
        try:
            value = wirejson.loads(arguments)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise bad_response(provider, f"a tool call ({call_id}) whose arguments are not a JSON object")
    return value


# --- a stream ---


@dataclass(eq=False)
class _Call(StreamedCall):
    """One tool call of the stream, by its chat index."""

    id: str | None = None
    name: str | None = None
    held: list[str] = field(default_factory=list)  # fragments waiting for the call's block to start
    index: int | None = None  # its content block, once started


@dataclass(eq=False)
class _Block:
    """A content block: waiting (index None) or started. Thinking and text carry their pieces here."""

    kind: str  # "thinking", "text" or "tool_use"
    pieces: list[str] = field(default_factory=list)
    call: _Call | None = None
    index: int | None = None


class MessagesFromChat:
    """A chat provider's stream, through its adapter's translator, as Anthropic Messages events.

    Blocks are sent one at a time, in the order their content first came, each as content_block_start,
    deltas, content_block_stop. What comes for another block while one is open waits (is held) until the
    open one may close: at once for thinking and text, for a tool call only once its arguments are a whole
    JSON object (or the choice has finished), so that no fragment of a call can arrive after its block has
    stopped (Claude Code stops reading at an event for a stopped block, WIRE-FORMATS §6.2). A chat stream
    sends its calls one after another, so a call's block stops when the next call or content starts.
    message_delta goes out once the usage is known (chat's finish_reason chunk comes before the usage
    chunk) or at the provider's end, then message_stop.
    """

    reads = "events"
    failed = None  # the translator raises a provider's error event: fail() tells the client

    def __init__(self, translator: StreamTranslator, model: str):
        self._translator = translator
        self._model = model
        self._started = False  # message_start sent
        self._pinged = False
        self._blocks = 0  # blocks started: the next one's index
        self._open: _Block | None = None
        self._waiting: list[_Block] = []  # blocks not started yet, in order of arrival
        self._calls: dict[int, _Call] = {}
        self._called = False  # a tool_use block was started
        self._finish_reason: Any = None
        self._finished = False  # the choice's finish_reason came
        self._stopped = False  # message_stop sent

    @property
    def usage(self) -> Usage:
        return self._translator.usage

    @property
    def done(self) -> bool:
        """message_stop is out, or the provider has ended after a finish_reason (one that ends without
        any is incomplete, and ProxyStream answers it with an error event, not an invented stop)."""
        return self._stopped or (self._finished and self._translator.done)

    def feed(self, item: SseEvent) -> list[Event]:
        events: list[Event] = []
        for chunk in self._translator.feed(item):
            if not self._stopped:
                events.extend(self._chunk(chunk))
        if self._finished and not self._stopped and (self._usage_known() or self._translator.done):
            events.extend(self._message_end())
        return events

    def finish(self) -> list[Event]:
        return [] if self._stopped else self._message_end()

    def fail(self, error: ApiError) -> list[Event]:
        return [Event(name="error", data=wirejson.dumps(error_body(error)))]

    def keepalive(self) -> Event:
        return PING

    # --- one chunk ---

    def _chunk(self, raw: OutChunk) -> list[Event]:
        chunk = event_json(raw, PROVIDER) if isinstance(raw, str) else raw
        events = [] if self._started else [self._message_start(chunk)]
        self._started = True
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None  # mcpd never asks for n > 1
        if not isinstance(choice, dict):  # the usage chunk ("choices": [], or null on some servers)
            return events
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        events += self._piece("thinking", reasoning_of(delta))
        events += self._piece("text", text_of(delta))
        fragments = delta.get("tool_calls")
        for fragment in fragments if isinstance(fragments, list) else []:
            if isinstance(fragment, dict):
                events += self._fragment(fragment)
        if choice.get("finish_reason") is not None and not self._finished:
            self._finished, self._finish_reason = True, choice["finish_reason"]
            events += self._advance(force=True) + self._stop_open()  # the stop reason waits for the usage
        return events

    def _piece(self, kind: str, text: str) -> list[Event]:
        """Thinking or text: into the open block of its kind, else into a waiting block."""
        if not text:
            return []
        if self._open is not None and self._open.kind == kind:
            return [self._delta(text)]
        last = self._waiting[-1] if self._waiting else None
        if last is not None and last.kind == kind:
            last.pieces.append(text)
        else:
            self._waiting.append(_Block(kind, [text]))
        return self._advance()

    def _fragment(self, fragment: dict[str, Any]) -> list[Event]:
        """A tool call fragment: a new call waits for its block; arguments go out once it is open."""
        k = fragment.get("index")
        if not isinstance(k, int):  # a server that numbers no calls sends each one whole
            k = len(self._calls)
        call = self._calls.get(k)
        if call is None:
            call = self._calls[k] = _Call()
            self._waiting.append(_Block("tool_use", call=call))
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        if call.id is None and isinstance(fragment.get("id"), str) and fragment["id"]:
            call.id = fragment["id"]
        if call.name is None and isinstance(function.get("name"), str) and function["name"]:
            call.name = function["name"]
        piece = function.get("arguments")
        if isinstance(piece, dict):
            piece = wirejson.dumps(piece).decode()
        events: list[Event] = []
        if isinstance(piece, str) and piece:  # an empty fragment may be skipped (§7.1)
            is_open = self._open is not None and self._open.call is call
            if call.index is not None and not is_open:
                log.warning("a tool call fragment came after its call was complete; dropped")
            else:
                call.arguments.append(piece)
                if is_open:
                    events.append(self._delta(piece))
                else:
                    call.held.append(piece)
        return events + self._advance()

    # --- blocks ---

    def _advance(self, force: bool = False) -> list[Event]:
        """Start waiting blocks, in order, while the open one may close (all of them when forced)."""
        events: list[Event] = []
        while self._waiting:
            call = self._open.call if self._open is not None else None
            if call is not None and not force and not call.complete():
                break
            block = self._waiting[0]
            if block.call is not None and block.call.name is None and not force:
                break  # a block cannot start without the tool's name
            self._waiting.pop(0)
            events += self._stop_open() + self._start(block)
        return events

    def _start(self, block: _Block) -> list[Event]:
        block.index, self._blocks = self._blocks, self._blocks + 1
        if block.kind == "text":
            content: dict[str, Any] = {"type": "text", "text": ""}
        elif block.kind == "thinking":
            content = {"type": "thinking", "thinking": "", "signature": ""}  # chat models sign nothing
        else:
            call = block.call
            assert call is not None
            call.index, call.id = block.index, call.id or new_tool_use_id()
            content = {"type": "tool_use", "id": call.id, "name": call.name or "", "input": {}}
            block.pieces, call.held = call.held, []
            self._called = True
        events = [self._event({"type": "content_block_start", "index": block.index, "content_block": content})]
        if not self._pinged:  # where Anthropic sends its first ping
            events.append(PING)
            self._pinged = True
        self._open = block
        events += [self._delta(piece) for piece in block.pieces]
        block.pieces = []
        return events

    def _delta(self, piece: str) -> Event:
        block = self._open
        assert block is not None
        if block.kind == "text":
            delta = {"type": "text_delta", "text": piece}
        elif block.kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": piece}
        else:
            delta = {"type": "input_json_delta", "partial_json": piece}
        return self._event({"type": "content_block_delta", "index": block.index, "delta": delta})

    def _stop_open(self) -> list[Event]:
        if self._open is None:
            return []
        index, self._open = self._open.index, None
        return [self._event({"type": "content_block_stop", "index": index})]

    # --- the message ---

    def _message_start(self, chunk: dict[str, Any]) -> Event:
        message = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(self._translator.usage),  # what is known so far: zeros, mostly
        }
        return self._event({"type": "message_start", "message": message})

    def _message_end(self) -> list[Event]:
        """Whatever blocks are owed, then message_delta (stop reason, usage) and message_stop."""
        events = self._advance(force=True) + self._stop_open()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self._finish_reason, self._called), "stop_sequence": None},
            "usage": anthropic_usage(self._translator.usage),
        }
        self._stopped = True
        return [*events, self._event(delta), self._event({"type": "message_stop"})]

    def _usage_known(self) -> bool:
        usage = self._translator.usage
        return usage.prompt_tokens is not None or usage.completion_tokens is not None

    @staticmethod
    def _event(data: dict[str, Any]) -> Event:
        return Event(name=data["type"], data=wirejson.dumps(data))
