"""SSE framing and ProxyStream: relays a provider's stream to the client and owns its cleanup."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.http import HttpResponse, StreamingHttpResponse

from llms.adapters.base import OutChunk, StreamTranslator
from llms.heartbeat import Heartbeat
from llms.scrub import Scrubber, scrub_error
from mcpd import wirejson
from mcpd.errors import UPSTREAM_STREAM_INCOMPLETE, ApiError, InternalError, UpstreamError

if TYPE_CHECKING:
    from audit.recorder import CallRecord
    from llms.transport import UpstreamResponse

SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"  # an SSE comment: clients ignore it
DRAIN_TIMEOUT = 1.0  # seconds to wait for the end of a body after the provider's last event
log = logging.getLogger(__name__)


def sse(chunk: OutChunk | dict) -> bytes:
    """One `data: …` event; a str chunk is JSON text already and is sent as it is."""
    data = chunk.encode() if isinstance(chunk, str) else wirejson.dumps(chunk)
    return b"data: " + data + b"\n\n"


class Answer:
    """A whole (non-streamed) answer: its JSON bytes. close() ends the call's audit record, once the
    bytes have gone out (the view registers it with the response)."""

    def __init__(self, body: bytes, record: CallRecord):
        self.body, self._record = body, record

    def json(self) -> dict:
        """The answer as a dict (for callers that read it, such as `manage.py llm test`)."""
        return wirejson.loads(self.body)

    def close(self) -> None:
        """Safe to call twice."""
        self._record.finish()


class ProxyStream:
    """The body of a streamed answer. Django calls close() when the response ends or the client goes
    away; close() is the single exit: it drops the upstream connection and writes the audit row."""

    def __init__(self, upstream: UpstreamResponse, translator: StreamTranslator, record: CallRecord,
                 scrub: Scrubber | None = None, keepalive: float = 0.0):
        self._upstream, self._translator, self._record = upstream, translator, record
        self._scrub = scrub or Scrubber(None)
        self._keepalive = keepalive
        self._events: Heartbeat | None = None
        self._gen: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        self._gen = self._frames()
        return self._gen

    def _frames(self) -> Iterator[bytes]:
        try:
            redact = self._scrub.chunk
            self._events = Heartbeat(self._upstream.events(), self._keepalive)
            for event in self._events:
                if event is None:  # the provider has been silent for a while
                    yield SSE_KEEPALIVE
                    continue
                for chunk in self._translator.feed(event):
                    self._record.first_token()
                    yield redact(sse(chunk))
                if self._translator.done:
                    break
            if not self._translator.done:
                # The one place that decides it, for every adapter and route.
                raise UpstreamError("The provider ended the stream before it was complete.",
                                    code=UPSTREAM_STREAM_INCOMPLETE)
            for chunk in self._translator.finish():
                yield redact(sse(chunk))
            yield SSE_DONE
            self._record.ok()
            # The reader goes on to the end of the body (the chunked terminator), which hands the
            # connection back to the pool: the next call skips a TCP and TLS handshake.
            self._events.finished(DRAIN_TIMEOUT)
        except ApiError as exc:  # the headers are gone: one error event, and no [DONE]
            scrub_error(exc, self._scrub)
            self._record.fail_mid_stream(exc)
            yield sse(exc.to_body())
        except Exception:  # a translation bug must still end the stream properly and be audited
            log.exception("relaying a stream failed")
            error = InternalError("mcpd failed while relaying the provider's stream.")
            self._record.fail_mid_stream(error)
            yield sse(error.to_body())
        finally:
            self._record.set_usage(self._translator.usage)

    def close(self) -> None:
        """Safe to call twice, and before any iteration."""
        try:
            if self._gen is not None:
                self._gen.close()
            if self._events is not None and self._events.reading:
                # The reader is blocked on the provider's socket: wake it and let it end first, as
                # closing a buffered stream another thread or greenlet is reading waits for its lock.
                self._upstream.shutdown()
                if not self._events.finished(DRAIN_TIMEOUT):
                    log.warning("a stream's reader did not stop; its connection is left to it")
                    return
            self._upstream.close()
        finally:
            self._record.finish()


def answer_response(answer: Answer) -> HttpResponse:
    """The client's response for a whole answer; the audit row is written after it has been sent."""
    response = HttpResponse(answer.body, content_type="application/json")
    response._resource_closers.append(answer.close)  # run by the server once the body is out
    return response


def streaming_response(stream: ProxyStream) -> StreamingHttpResponse:
    """The client's response for a stream, with the contract's headers."""
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
