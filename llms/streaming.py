"""What a call gives back, service side: an Answer (the whole reply) or a ProxyStream of Events.

Nothing here is HTTP: the web layer (mcpd/http.py) frames Events as server-sent events and registers
the close() of either with the response, which is the single exit that writes the audit row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from llms.adapters.base import Usage
from llms.heartbeat import Heartbeat
from llms.scrub import Scrubber, scrub_error
from mcpd import wirejson
from mcpd.errors import UPSTREAM_STREAM_INCOMPLETE, ApiError, InternalError, UpstreamError

if TYPE_CHECKING:
    from audit.recorder import CallRecord
    from llms.transport import UpstreamResponse

DRAIN_TIMEOUT = 1.0  # seconds to wait for the end of a body after the provider's last event
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to send a streaming client: a server-sent event (its JSON data and, for the APIs that
    name them, its name), a comment, or bytes a passthrough relays exactly as the provider framed them."""

    data: bytes
    name: str | None = None
    kind: str = "event"  # "event", "comment" or "raw"


class Relay(Protocol):
    """Turns what a provider streams into what the client's API streams, one upstream item at a time."""

    reads: str  # "events": the provider's parsed SSE events; "bytes": its body as it arrives
    usage: Usage
    # A provider's error the relay has already passed on to the client as it came; when it is not done
    # then (its stream ended after the error, without the terminal event), fail() gives that end.
    failed: ApiError | None

    @property
    def done(self) -> bool:
        """True once the provider has said its stream is complete."""
        ...

    def feed(self, item: Any) -> list[Event]:
        """Zero or more events for the client; raises ApiError for a provider's error."""
        ...

    def finish(self) -> list[Event]:
        """What closes the client's stream once the provider's is complete."""
        ...

    def fail(self, error: ApiError) -> list[Event]:
        """The client API's one error event for a failure after the stream began."""
        ...

    def keepalive(self) -> Event | None:
        """What to send during a long silence of the provider (None: nothing can go out now)."""
        ...


class Answer:
    """A whole (non-streamed) answer: its JSON bytes. close() ends the call's audit record, once the
    bytes have gone out (the view registers it with the response)."""

    def __init__(self, body: bytes, record: CallRecord):
        self.body, self._record = body, record

    @property
    def headers(self) -> dict[str, str]:
        """Response headers of the call (the limits' x-ratelimit-*)."""
        return self._record.headers

    def json(self) -> dict:
        """The answer as a dict (for callers that read it, such as `manage.py llm test`)."""
        return wirejson.loads(self.body)

    def close(self) -> None:
        """Safe to call twice."""
        self._record.finish()


class ProxyStream:
    """A streamed answer: iterate for its Events. The web layer calls close() when the response ends or
    the client goes away; close() is the single exit: it drops the upstream connection and writes the
    audit row."""

    def __init__(self, upstream: UpstreamResponse, relay: Relay, record: CallRecord,
                 scrub: Scrubber | None = None, keepalive: float = 0.0):
        self._upstream, self._relay, self._record = upstream, relay, record
        self._scrub = scrub or Scrubber(None)
        self._keepalive = keepalive
        self._reader: Heartbeat | None = None
        self._gen: Iterator[Event] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Response headers of the call (the limits' x-ratelimit-*)."""
        return self._record.headers

    def __iter__(self) -> Iterator[Event]:
        self._gen = self._events()
        return self._gen

    def _events(self) -> Iterator[Event]:
        relay = self._relay
        try:
            source = self._upstream.events() if relay.reads == "events" else self._upstream.chunks()
            self._reader = Heartbeat(source, self._keepalive)
            for item in self._reader:
                if item is None:  # the provider has been silent for a while
                    beat = relay.keepalive()
                    if beat is not None:
                        yield beat
                    continue
                for event in relay.feed(item):
                    self._record.first_token()
                    yield self._redacted(event)
                if relay.done:
                    break
            if relay.failed is not None:  # the client has the provider's own error event already
                scrub_error(relay.failed, self._scrub)
                self._record.fail_mid_stream(relay.failed)
                if not relay.done:  # but not the end its API requires after one
                    yield from relay.fail(relay.failed)
                return
            if not relay.done:
                # The one place that decides it, for every adapter and route.
                raise UpstreamError("The provider ended the stream before it was complete.",
                                    code=UPSTREAM_STREAM_INCOMPLETE)
            yield from map(self._redacted, relay.finish())
            self._record.ok()
            # The reader goes on to the end of the body (the chunked terminator), which hands the
            # connection back to the pool: the next call skips a TCP and TLS handshake.
            self._reader.finished(DRAIN_TIMEOUT)
        except ApiError as exc:  # the headers are gone: the API's one error event
            scrub_error(exc, self._scrub)
            self._record.fail_mid_stream(exc)
            yield from relay.fail(exc)
        except Exception:  # a translation bug must still end the stream properly and be audited
            log.exception("relaying a stream failed")
            error = InternalError("mcpd failed while relaying the provider's stream.")
            self._record.fail_mid_stream(error)
            yield from relay.fail(error)
        finally:
            self._record.set_usage(relay.usage)

    def _redacted(self, event: Event) -> Event:
        data = self._scrub.chunk(event.data)
        return event if data is event.data else replace(event, data=data)

    def close(self) -> None:
        """Safe to call twice, and before any iteration."""
        try:
            if self._gen is not None:
                self._gen.close()
            if self._reader is not None and self._reader.reading:
                # The reader is blocked on the provider's socket: wake it and let it end first, as
                # closing a buffered stream another thread or greenlet is reading waits for its lock.
                self._upstream.shutdown()
                if not self._reader.finished(DRAIN_TIMEOUT):
                    log.warning("a stream's reader did not stop; its connection is left to it")
                    return
            self._upstream.close()
        finally:
            self._record.finish()
