"""The adapter seam: pure translation between OpenAI chat.completions and one provider's wire format.

Adapters never import Django models, requests or settings: a frozen Target and plain dicts in,
plain dicts out. Transport (llms/transport.py) does the HTTP; the proxy (llms/proxy.py) glues them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mcpd.errors import ApiError

ChatRequest = dict[str, Any]      # an OpenAI chat.completions request body, already validated
ChatCompletion = dict[str, Any]   # an OpenAI chat.completion object
ChatChunk = dict[str, Any]        # an OpenAI chat.completion.chunk object
# A translator may hand back a chunk as JSON text already (relayed byte for byte: no re-encoding).
OutChunk = ChatChunk | str


@dataclass(frozen=True)
class Target:
    """Where and as what one call goes: resolved from an Llm at call time."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    default_max_tokens: int | None = None


@dataclass(frozen=True)
class UpstreamRequest:
    """One HTTP request to a provider: POST url with headers and a JSON body."""

    url: str
    headers: dict[str, str] = field(repr=False)
    json: dict[str, Any]


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event from a provider: its event name ('message' when absent) and data."""

    event: str
    data: str


@dataclass
class Usage:
    """Token counts as the audit row wants them; None when the provider did not say.

    prompt_tokens counts every input token, those read from or written to the provider's prompt cache
    included (as OpenAI counts them; Anthropic reports the three apart).
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


class StreamTranslator(Protocol):
    """Turns a provider's SSE events into OpenAI chunks, one upstream event at a time."""

    usage: Usage

    def feed(self, event: SseEvent) -> list[OutChunk]:
        """Zero or more OpenAI chunks for one upstream event; raises ApiError for an error event."""
        ...

    def finish(self) -> list[OutChunk]:
        """Closing chunk(s) once the upstream stream has ended (e.g. the usage chunk)."""
        ...

    @property
    def done(self) -> bool:
        """True once the provider has said the stream is complete."""
        ...


class Adapter(Protocol):
    """One provider wire format."""

    def build_request(self, target: Target, body: ChatRequest) -> UpstreamRequest:
        """The upstream request for a client's chat.completions body; raises InvalidRequest."""
        ...

    def parse_response(self, payload: dict[str, Any]) -> tuple[ChatCompletion, Usage]:
        """The OpenAI chat.completion for a provider's 2xx JSON reply, and its token usage."""
        ...

    def to_error(self, status: int, payload: Any, retry_after: str | None) -> ApiError:
        """The ApiError for a provider's non-2xx reply (payload: parsed JSON, or text, or None)."""
        ...

    def stream_translator(self, body: ChatRequest) -> StreamTranslator:
        """A fresh translator for one streamed response to this client body."""
        ...
