"""A chat provider's answer -> the Responses API's: a chat.completion -> a Response, a chat.completion.chunk
stream -> Responses stream events (WIRE-FORMATS §4.3, §5.1).

Chat answer:      https://platform.openai.com/docs/api-reference/chat/object (and /chat-streaming)
Responses answer: https://platform.openai.com/docs/api-reference/responses/object (and /responses-streaming)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from llms.adapters.base import OutChunk, SseEvent, StreamTranslator, Usage
from llms.adapters.chat import reasoning_of
from llms.adapters.errors import bad_response, event_json
from llms.adapters.passthrough import usage_of
from llms.inbound.responses.errors import error_event, response_error
from llms.inbound.responses.output import (
    InputDecoder,
    arguments_text,
    call_item,
    custom_input,
    message_item,
    reasoning_item,
    refusal_part,
    response,
    summary_part,
    text_part,
)
from llms.inbound.responses.tables import id_base, new_call_id, reasoning_tokens_of, response_usage, status_of
from llms.inbound.responses.tools import ChatTool, chat_tools
from llms.inbound.tool_calls import StreamedCall
from llms.streaming import Event
from mcpd import wirejson
from mcpd.errors import ApiError

log = logging.getLogger(__name__)

PROVIDER = "openai-compatible"  # how the provider is named in a bad_response
KEEPALIVE = Event(b"keep-alive", kind="comment")  # Responses has no keep-alive event; SDKs skip comments


def _created(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else int(time.time())


# --- a whole answer ---


def response_from_chat(completion: dict[str, Any], *, model: str, request: dict[str, Any],
                       provider: str = PROVIDER) -> dict[str, Any]:
    """The Response for a chat.completion; `model` is the Llm's name, `request` the client's Responses body
    (its configuration is echoed; calls of its custom tools are custom_tool_call items)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise bad_response(provider, "a reply that is not a chat.completion")
    base = id_base(completion.get("id"))
    output: list[dict[str, Any]] = []
    reasoning = reasoning_of(message)
    if reasoning:
        output.append(reasoning_item(base, 0, reasoning))
    parts = [part(value) for part, value in ((text_part, message.get("content")),
                                             (refusal_part, message.get("refusal"))) if isinstance(value, str) and value]
    if parts:
        output.append(message_item(base, len(output), parts))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_response(provider, "a chat.completion whose tool_calls are not a list")
    tools = chat_tools(request)
    for call in calls:
        output.append(tool_call_item(call, base, len(output), tools, provider))
    status, incomplete = status_of(choice.get("finish_reason"))
    if status == "incomplete" and output and "status" in output[-1]:
        output[-1]["status"] = "incomplete"  # the item the limit cut (reasoning items have no status)
    usage = response_usage(usage_of(completion), reasoning_tokens_of(completion.get("usage")))
    return response(base, _created(completion.get("created")), model, request, status=status, output=output,
                    usage=usage, incomplete=incomplete)


def tool_call_item(call: Any, base: str, index: int, tools: dict[str, ChatTool], provider: str) -> dict[str, Any]:
    """A function_call item for a chat tool call, or a custom_tool_call for a call of a custom tool."""
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise bad_response(provider, "a tool call without a function name")
    call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else new_call_id()
    arguments = arguments_text(function.get("arguments"))
    tool = tool_called(tools, name)
    return call_item(base, index, call_id, tool, custom_input(arguments) if tool.kind == "custom" else arguments)


def tool_called(tools: dict[str, ChatTool], name: str) -> ChatTool:
    """The request's tool a chat call names (a function of that name when the request has none)."""
    return tools.get(name) or ChatTool("function", name)


# --- a stream ---


@dataclass(eq=False)
class _Call(StreamedCall):
    """One tool call of the stream, by its chat index."""

    id: str | None = None
    name: str | None = None  # the chat name
    tool: ChatTool | None = None  # the request's tool it names, once its item has started
    held: list[str] = field(default_factory=list)  # fragments waiting for the call's item to start
    started: bool = False
    decoder: InputDecoder | None = None  # a custom tool's: its input, decoded as it comes
    sent: list[str] = field(default_factory=list)  # the input deltas sent (custom tools)


@dataclass(eq=False)
class _Item:
    """An output item: waiting (index None) or started. Reasoning and message pieces wait here."""

    kind: str  # "reasoning", "message" or "call"
    pieces: list[tuple[str, str]] = field(default_factory=list)  # (part: "reasoning", "text", "refusal"; text)
    call: _Call | None = None
    index: int | None = None  # output_index, once started
    id: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)  # a message's parts, built up
    part_open: bool = False  # its last part has had no done events yet
    text: list[str] = field(default_factory=list)  # the reasoning so far


class ResponsesFromChat:
    """A chat provider's stream, through its adapter's translator, as Responses stream events.

    response.created and response.in_progress first; then the output items one at a time, in the order
    their content first came, each as output_item.added, its parts and deltas, output_item.done, with
    output_index 0, 1, …. What comes for another item while one is open waits until the open one may close:
    at once for reasoning and a message, for a tool call once its arguments are a whole JSON object (or the
    choice has finished), so that nothing of a call can come after its item is done. Exactly one terminal
    event ends the stream: response.completed or response.incomplete (once the usage is known: chat's
    finish_reason chunk comes before the usage chunk, or at the provider's end), or response.failed after
    an `error` event (fail()).
    """

    reads = "events"
    failed = None  # the translator raises a provider's error event: fail() tells the client

    def __init__(self, translator: StreamTranslator, model: str, request: dict[str, Any]):
        self._translator = translator
        self._model = model
        self._request = request
        self._tools = chat_tools(request)
        self._sequence = 0
        self._base = ""
        self._created = 0
        self._started = False  # response.created sent
        self._output: list[dict[str, Any]] = []  # items done
        self._open: _Item | None = None
        self._waiting: list[_Item] = []
        self._calls: dict[int, _Call] = {}
        self._usage: Any = None  # the provider's last chat usage object (for reasoning_tokens)
        self._status: tuple[str, dict[str, str] | None] = ("completed", None)  # by the finish_reason
        self._finished = False  # the choice's finish_reason came
        self._stopped = False  # the terminal event is out

    @property
    def usage(self) -> Usage:
        return self._translator.usage

    @property
    def done(self) -> bool:
        """The terminal event is out, or the provider has ended after a finish_reason (one that ends without
        any is incomplete, and ProxyStream answers it with fail(), not an invented end)."""
        return self._stopped or (self._finished and self._translator.done)

    def feed(self, item: SseEvent) -> list[Event]:
        events: list[Event] = []
        for chunk in self._translator.feed(item):
            if not self._stopped:
                events.extend(self._chunk(chunk))
        if self._finished and not self._stopped and (self._usage_known() or self._translator.done):
            events.extend(self._terminal())
        return events

    def finish(self) -> list[Event]:
        return [] if self._stopped else self._terminal()

    def fail(self, error: ApiError) -> list[Event]:
        """An `error` event, then the terminal response.failed (after response.created, if not sent yet:
        an SDK reads nothing before it); nothing once the stream has ended."""
        if self._stopped:
            return []
        events = [] if self._started else self._start_response({})
        events.append(self._emit(error_event(error, self._sequence)))
        failed = response(self._base, self._created, self._model, self._request, status="failed",
                          output=self._output, error=response_error(error))
        events.append(self._event("response.failed", response=failed))
        self._stopped = True
        return events

    def keepalive(self) -> Event:
        return KEEPALIVE

    # --- one chunk ---

    def _chunk(self, raw: OutChunk) -> list[Event]:
        chunk = event_json(raw, PROVIDER) if isinstance(raw, str) else raw
        events = [] if self._started else self._start_response(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None  # mcpd never asks for n > 1
        if not isinstance(choice, dict):  # the usage chunk ("choices": [], or null on some servers)
            return events
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        events += self._piece("reasoning", "reasoning", reasoning_of(delta))
        for part in ("content", "refusal"):
            value = delta.get(part)
            events += self._piece("message", "text" if part == "content" else "refusal",
                                  value if isinstance(value, str) else "")
        fragments = delta.get("tool_calls")
        for fragment in fragments if isinstance(fragments, list) else []:
            if isinstance(fragment, dict):
                events += self._fragment(fragment)
        if choice.get("finish_reason") is not None and not self._finished:
            self._finished, self._status = True, status_of(choice["finish_reason"])
            # The terminal event waits for the usage; the last item is the one a limit cut.
            events += self._advance(force=True) + self._close(self._status[0])
        return events

    def _piece(self, kind: str, part: str, text: str) -> list[Event]:
        """Reasoning or message text: into the open item of its kind, else into a waiting item."""
        if not text:
            return []
        if self._open is not None and self._open.kind == kind:
            return self._delta(part, text)
        last = self._waiting[-1] if self._waiting else None
        if last is not None and last.kind == kind:
            last.pieces.append((part, text))
        else:
            self._waiting.append(_Item(kind, [(part, text)]))
        return self._advance()

    def _fragment(self, fragment: dict[str, Any]) -> list[Event]:
        """A tool call fragment: a new call waits for its item; arguments go out once it is open."""
        k = fragment.get("index")
        if not isinstance(k, int):  # a server that numbers no calls sends each one whole
            k = len(self._calls)
        call = self._calls.get(k)
        if call is None:
            call = self._calls[k] = _Call()
            self._waiting.append(_Item("call", call=call))
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        if call.id is None and isinstance(fragment.get("id"), str) and fragment["id"]:
            call.id = fragment["id"]
        if call.name is None and isinstance(function.get("name"), str) and function["name"]:
            call.name = function["name"]
        piece = arguments_text(function.get("arguments"))
        events: list[Event] = []
        if piece:
            is_open = self._open is not None and self._open.call is call
            if call.started and not is_open:
                log.warning("a tool call fragment came after its call was complete; dropped")
            else:
                call.arguments.append(piece)
                if is_open:
                    events += self._delta("arguments", piece)
                else:
                    call.held.append(piece)
        return events + self._advance()

    # --- items ---

    def _advance(self, force: bool = False) -> list[Event]:
        """Start waiting items, in order, while the open one may close (all of them when forced)."""
        events: list[Event] = []
        while self._waiting:
            call = self._open.call if self._open is not None else None
            if call is not None and not force and not call.complete():
                break
            item = self._waiting[0]
            if item.call is not None and item.call.name is None and not force:
                break  # an item cannot start without the tool's name
            self._waiting.pop(0)
            events += self._close("completed") + self._start(item)
        return events

    def _start(self, item: _Item) -> list[Event]:
        item.index = len(self._output)
        call = item.call
        if call is not None:
            call.started, call.id = True, call.id or new_call_id()
            call.tool = tool_called(self._tools, call.name or "")
            if call.tool.kind == "custom":
                call.decoder = InputDecoder()
            added = call_item(self._base, item.index, call.id, call.tool, "", status="in_progress")
            item.pieces, call.held = [("arguments", piece) for piece in call.held], []
        elif item.kind == "reasoning":
            added = reasoning_item(self._base, item.index, None)
        else:
            added = message_item(self._base, item.index, [], status="in_progress")
        item.id = added["id"]
        self._open = item
        events = [self._event("response.output_item.added", output_index=item.index, item=added)]
        if item.kind == "reasoning":
            events.append(self._event("response.reasoning_summary_part.added", **self._at(), summary_index=0,
                                      part=summary_part("")))
        for part, text in item.pieces:
            events += self._delta(part, text)
        item.pieces = []
        return events

    def _at(self) -> dict[str, Any]:
        item = self._open
        assert item is not None
        return {"item_id": item.id, "output_index": item.index}

    def _delta(self, part: str, text: str) -> list[Event]:
        item = self._open
        assert item is not None
        if part == "reasoning":
            item.text.append(text)
            return [self._event("response.reasoning_summary_text.delta", **self._at(), summary_index=0, delta=text)]
        if part == "arguments":
            call = item.call
            assert call is not None
            if call.decoder is None:
                return [self._event("response.function_call_arguments.delta", **self._at(), delta=text)]
            decoded = call.decoder.feed(text)
            call.sent.append(decoded)
            return [self._event("response.custom_tool_call_input.delta", **self._at(), delta=decoded)] if decoded else []
        kind = "output_text" if part == "text" else "refusal"
        events = []
        if not item.parts or item.parts[-1]["type"] != kind:  # a new part: text and refusal alternate
            events += self._close_part()
            item.parts.append(text_part("") if kind == "output_text" else refusal_part(""))
            item.part_open = True
            events.append(self._event("response.content_part.added", **self._at(), content_index=len(item.parts) - 1,
                                      part=item.parts[-1]))
        current = item.parts[-1]
        where = {**self._at(), "content_index": len(item.parts) - 1}
        if kind == "output_text":
            current["text"] += text
            events.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        else:
            current["refusal"] += text
            events.append(self._event("response.refusal.delta", **where, delta=text))
        return events

    def _close_part(self) -> list[Event]:
        """The done events of the open message's last part, if it has one still open."""
        item = self._open
        if item is None or not item.part_open:
            return []
        item.part_open = False
        current = item.parts[-1]
        where = {**self._at(), "content_index": len(item.parts) - 1}
        if current["type"] == "output_text":
            done = self._event("response.output_text.done", **where, text=current["text"], logprobs=[])
        else:
            done = self._event("response.refusal.done", **where, refusal=current["refusal"])
        return [done, self._event("response.content_part.done", **where, part=current)]

    def _close(self, status: str) -> list[Event]:
        """The done events of the open item, which joins the output."""
        item = self._open
        if item is None:
            return []
        events: list[Event] = []
        if item.kind == "reasoning":
            text = "".join(item.text)
            events += [self._event("response.reasoning_summary_text.done", **self._at(), summary_index=0, text=text),
                       self._event("response.reasoning_summary_part.done", **self._at(), summary_index=0,
                                   part=summary_part(text))]
            done = reasoning_item(self._base, item.index or 0, text)
        elif item.kind == "message":
            events += self._close_part()
            done = message_item(self._base, item.index or 0, item.parts, status=status)
        else:
            call_events, done = self._close_call(item, status)
            events += call_events
        self._open = None
        self._output.append(done)
        return [*events, self._event("response.output_item.done", output_index=item.index, item=done)]

    def _close_call(self, item: _Item, status: str) -> tuple[list[Event], dict[str, Any]]:
        call = item.call
        assert call is not None and call.id is not None
        arguments, where = "".join(call.arguments), self._at()
        tool = call.tool or tool_called(self._tools, call.name or "")
        if call.decoder is None:
            done = call_item(self._base, item.index or 0, call.id, tool, arguments, status)
            return [self._event("response.function_call_arguments.done", **where, name=tool.name,
                                arguments=arguments)], done
        value, sent = custom_input(arguments), "".join(call.sent)
        events = []
        if value.startswith(sent) and len(value) > len(sent):  # what the decoder could not give yet
            events.append(self._event("response.custom_tool_call_input.delta", **where, delta=value[len(sent):]))
        events.append(self._event("response.custom_tool_call_input.done", **where, input=value))
        return events, call_item(self._base, item.index or 0, call.id, tool, value, status)

    # --- the response ---

    def _start_response(self, chunk: dict[str, Any]) -> list[Event]:
        self._started = True
        self._base, self._created = id_base(chunk.get("id")), _created(chunk.get("created"))
        begun = response(self._base, self._created, self._model, self._request)
        return [self._event("response.created", response=begun), self._event("response.in_progress", response=begun)]

    def _terminal(self) -> list[Event]:
        """Whatever items are owed, then response.completed or response.incomplete."""
        status, incomplete = self._status
        events = self._advance(force=True) + self._close(status)
        usage = response_usage(self._translator.usage, reasoning_tokens_of(self._usage))
        final = response(self._base, self._created, self._model, self._request, status=status,
                         output=self._output, usage=usage, incomplete=incomplete)
        self._stopped = True
        return [*events, self._event(f"response.{status}", response=final)]

    def _usage_known(self) -> bool:
        usage = self._translator.usage
        return usage.prompt_tokens is not None or usage.completion_tokens is not None

    def _event(self, kind: str, **fields: Any) -> Event:
        return self._emit({"type": kind, "sequence_number": self._sequence, **fields})

    def _emit(self, data: dict[str, Any]) -> Event:
        self._sequence += 1
        return Event(name=data["type"], data=wirejson.dumps(data))
