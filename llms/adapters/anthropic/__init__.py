"""The anthropic provider: OpenAI chat.completions translated to and from the Anthropic Messages API.

https://docs.anthropic.com/en/api/messages. The translation lives beside this file, one module per
direction: request (+ messages, tools), response, stream, errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llms.adapters.anthropic.errors import error_from_status
from llms.adapters.anthropic.request import build_body
from llms.adapters.anthropic.response import parse_message
from llms.adapters.anthropic.stream import AnthropicStreamTranslator
from llms.adapters.base import ChatCompletion, ChatRequest, Target, UpstreamRequest, Usage
from mcpd.errors import ApiError

# https://docs.anthropic.com/en/api/versioning
ANTHROPIC_VERSION = "2023-06-01"


def request_headers(api_key: str | None) -> dict[str, str]:
    """x-api-key (only with a key), anthropic-version and content-type."""
    # https://docs.anthropic.com/en/api/overview#authentication
    headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    if api_key is not None:
        headers["x-api-key"] = api_key
    return headers


def messages_url(base_url: str) -> str:
    """POST {base_url}/messages; base_url already ends with the version path (/v1)."""
    return f"{base_url.rstrip('/')}/messages"


class AnthropicAdapter:
    """The Adapter for provider `anthropic`: pure translation, no per-call state."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock  # `created` of what we return; Anthropic's replies carry no timestamp

    def build_request(self, target: Target, body: ChatRequest) -> UpstreamRequest:
        """The Anthropic Messages request for a client's chat.completions body; raises InvalidRequest."""
        return UpstreamRequest(
            url=messages_url(target.base_url),
            headers=request_headers(target.api_key),
            json=build_body(target, body),
        )

    def parse_response(self, payload: dict[str, Any]) -> tuple[ChatCompletion, Usage]:
        """The OpenAI chat.completion for an Anthropic Message, and its token usage."""
        return parse_message(payload, int(self._clock()))

    def to_error(self, status: int, payload: Any, retry_after: str | None) -> ApiError:
        """The contract's ApiError for an Anthropic non-2xx reply."""
        return error_from_status(status, payload, retry_after)

    def stream_translator(self, body: ChatRequest) -> AnthropicStreamTranslator:
        """A fresh translator for one streamed response to this client body."""
        return AnthropicStreamTranslator(body, self._clock)
