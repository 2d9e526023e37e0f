"""SSE framing and ProxyStream: relays a provider's stream to the client and owns its cleanup."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.http import StreamingHttpResponse

from llms.adapters.base import OutChunk, StreamTranslator
from llms.scrub import Scrubber, scrub_error
from mcpd import wirejson
from mcpd.errors import ApiError, InternalError, UpstreamError

if TYPE_CHECKING:
    from audit.recorder import CallRecord
    from llms.transport import UpstreamResponse

SSE_DONE = b"data: [DONE]\n\n"
log = logging.getLogger(__name__)


def sse(chunk: OutChunk | dict) -> bytes:
    """One `data: …` event; a str chunk is JSON text already and is sent as it is."""
    data = chunk.encode() if isinstance(chunk, str) else wirejson.dumps(chunk)
    return b"data: " + data + b"\n\n"


class ProxyStream:
    """The body of a streamed answer. Django calls close() when the response ends or the client goes
    away; close() is the single exit: it drops the upstream connection and writes the audit row."""

    def __init__(self, upstream: UpstreamResponse, translator: StreamTranslator, record: CallRecord,
                 scrub: Scrubber | None = None):
        self._upstream, self._translator, self._record = upstream, translator, record
        self._scrub = scrub or Scrubber(None)
        self._gen: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        self._gen = self._frames()
        return self._gen

    def _frames(self) -> Iterator[bytes]:
        try:
            redact = self._scrub.chunk
            for event in self._upstream.events():
                for chunk in self._translator.feed(event):
                    self._record.first_token()
                    yield redact(sse(chunk))
                if self._translator.done:
                    break
            if not self._translator.done:
                raise UpstreamError("The provider ended the stream before it was complete.")
            for chunk in self._translator.finish():
                yield redact(sse(chunk))
            yield SSE_DONE
            self._record.ok()
            self._upstream.drain()
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
            usage = self._translator.usage
            self._record.set_usage(usage.prompt_tokens, usage.completion_tokens)

    def close(self) -> None:
        """Safe to call twice, and before any iteration."""
        if self._gen is not None:
            self._gen.close()
        self._upstream.close()
        self._record.finish()


def streaming_response(stream: ProxyStream) -> StreamingHttpResponse:
    """The client's response for a stream, with the contract's headers."""
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
