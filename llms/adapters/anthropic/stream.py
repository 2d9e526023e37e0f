"""Anthropic Messages SSE events -> OpenAI chat.completion.chunk objects, one event at a time.

Anthropic stream: https://docs.anthropic.com/en/api/messages-streaming
OpenAI chunks:    https://platform.openai.com/docs/api-reference/chat-streaming
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llms.adapters.anthropic.errors import PROVIDER, error_from_event
from llms.adapters.anthropic.response import (
    UsageTally,
    completion_id,
    finish_reason,
    openai_usage,
)
from llms.adapters.anthropic.tools import RESPONSE_TOOL
from llms.adapters.base import ChatChunk, ChatRequest, OutChunk, SseEvent, Usage
from llms.adapters.errors import event_json

Event = dict[str, Any]


class AnthropicStreamTranslator:
    """Translates one Anthropic stream for one client body (fresh per response)."""

    def __init__(self, body: ChatRequest, clock: Callable[[], float]):
        options = body.get("stream_options")
        self._include_usage = isinstance(options, dict) and options.get("include_usage") is True
        fmt = body.get("response_format")
        self._json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        self._id = "chatcmpl-anthropic"
        self._model = ""
        self._created = int(clock())
        self._tool_index: dict[int, int] = {}  # Anthropic content-block index -> OpenAI tool-call index
        self._answer_blocks: set[int] = set()  # blocks of the response_format tool: their JSON is content
        self._stop_reason: str | None = None
        self._finished = False  # the finish_reason chunk went out
        self._done = False
        self._tally = UsageTally()
        self.usage = Usage()

    @property
    def done(self) -> bool:
        """True once message_stop has arrived."""
        return self._done

    def feed(self, event: SseEvent) -> list[OutChunk]:
        """Zero or more OpenAI chunks for one Anthropic event; raises ApiError for an `error` event."""
        data = event_json(event.data, PROVIDER)
        kind = event.event if event.event != "message" else data.get("type")
        handler = self._HANDLERS.get(str(kind))
        # ping and event types Anthropic may add later are ignored:
        # https://docs.anthropic.com/en/api/messages-streaming#other-events
        return handler(self, data) if handler is not None else []

    def finish(self) -> list[OutChunk]:
        """Nothing more: message_stop said everything (a stream that ends before it is ProxyStream's to report)."""
        return []

    # --- one handler per Anthropic event type ---

    def _message_start(self, data: Event) -> list[OutChunk]:
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        self._id = completion_id(message.get("id"))
        self._model = message.get("model") or ""
        self._update_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _content_block_start(self, data: Event) -> list[OutChunk]:
        block = data.get("content_block") if isinstance(data.get("content_block"), dict) else {}
        index = data.get("index")
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == RESPONSE_TOOL:
            self._answer_blocks.add(index)
            return []
        if kind == "tool_use":
            # OpenAI counts tool calls (0, 1, ...), not content blocks; id and name go on the first delta.
            call = len(self._tool_index)
            self._tool_index[index] = call
            function = {"name": block.get("name"), "arguments": ""}
            return [
                self._chunk(
                    {
                        "tool_calls": [
                            {"index": call, "id": block.get("id"), "type": "function", "function": function}
                        ]
                    }
                )
            ]
        if kind == "text" and block.get("text"):
            return self._text(block["text"])
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _content_block_delta(self, data: Event) -> list[OutChunk]:
        delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(delta.get("text") or "")
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        if kind == "input_json_delta":
            return self._input_json(data.get("index"), delta.get("partial_json") or "")
        return []  # signature_delta (replay-only), citations_delta and future delta types

    def _message_delta(self, data: Event) -> list[OutChunk]:
        delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
        self._update_usage(data.get("usage"))
        if delta.get("stop_reason") is None or self._finished:
            return []
        self._stop_reason = delta["stop_reason"]
        return [self._finish_chunk()]

    def _message_stop(self, data: Event) -> list[OutChunk]:
        self._done = True
        chunks = [] if self._finished else [self._finish_chunk()]
        if self._include_usage:
            chunks.append(self._usage_chunk())
        return chunks

    def _error(self, data: Event) -> list[OutChunk]:
        # https://docs.anthropic.com/en/api/messages-streaming#error-events
        raise error_from_event(data)

    _HANDLERS: dict[str, Callable[[AnthropicStreamTranslator, Event], list[OutChunk]]] = {
        "message_start": _message_start,
        "content_block_start": _content_block_start,
        "content_block_delta": _content_block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }

    # --- helpers ---

    def _text(self, text: str) -> list[OutChunk]:
        """A content delta; in response_format mode only the tool's JSON is content."""
        if not text or self._json_mode:
            return []
        return [self._chunk({"content": text})]

    def _input_json(self, index: Any, piece: str) -> list[OutChunk]:
        """A tool call's arguments piece, or a piece of the response_format answer as content."""
        if not piece:  # Anthropic's first input_json_delta is often ""
            return []
        if index in self._answer_blocks:
            return [self._chunk({"content": piece})]
        call = self._tool_index.get(index)
        if call is None:  # a server tool's input: not shown
            return []
        return [self._chunk({"tool_calls": [{"index": call, "function": {"arguments": piece}}]})]

    def _update_usage(self, usage: Any) -> None:
        self.usage = self._tally.update(usage)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        """One chat.completion.chunk; the choice index is always 0 (not Anthropic's block index)."""
        chunk: ChatChunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None  # as OpenAI does: only the last chunk carries usage
        return chunk

    def _finish_chunk(self) -> ChatChunk:
        self._finished = True
        return self._chunk({}, finish_reason(self._stop_reason, bool(self._tool_index)))

    def _usage_chunk(self) -> ChatChunk:
        """The include_usage chunk: no choices, the whole response's usage."""
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = openai_usage(
            self.usage.prompt_tokens or 0,
            self.usage.completion_tokens or 0,
            self._tally.raw.get("cache_read_input_tokens", 0),
        )
        return chunk
