"""The one pooled HTTP session to providers. Raises only ApiError; streams are read as they arrive."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from llms.adapters.base import SseEvent, UpstreamRequest
from llms.adapters.errors import bad_response
from llms.sse import EventSplitter, EventTooLarge, parse_event
from mcpd import wirejson
from mcpd.errors import (
    UPSTREAM_STREAM_INCOMPLETE,
    UPSTREAM_TIMEOUT,
    UPSTREAM_UNREACHABLE,
    ApiError,
    Timeout,
    UpstreamError,
)

MAX_ERROR_BODY = 1024 * 1024  # a provider's error body is read up to this size
READ_SIZE = 64 * 1024


class NoCookies(DefaultCookiePolicy):
    """Accept and return no cookie: the session is shared by every user and every Llm, so a cookie
    one provider sets would ride along on other users' calls."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


def new_session() -> requests.Session:
    session = requests.Session()
    # Keep-alive to providers, MCPD_UPSTREAM_POOL_SIZE connections per host (a call beyond them opens
    # one, closed after it); no retries: a retried completion is a second bill.
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=settings.UPSTREAM_POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False  # no proxy or netrc surprises from the server's environment
    session.cookies = RequestsCookieJar(policy=NoCookies())
    return session


def safe_retry_after(value: str | None) -> str | None:
    """A provider's Retry-After when it is what the header may hold (seconds, or an HTTP date); it is
    relayed to the client, so nothing else of the provider's text may pass."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= 10:
        return value
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # the parser is lenient with what follows the time: keep none of it
        when = when.replace(tzinfo=UTC)
    return format_datetime(when.astimezone(UTC), usegmt=True)


SESSION = new_session()


class UpstreamResponse:
    """An open provider response: its status, then its JSON or its SSE events; close() drops it.

    A whole body (a reply, an error's) is read as it arrives, up to MCPD_UPSTREAM_MAX_BODY_BYTES, and must
    have arrived by `deadline` (the request's read timeout); a stream has the read timeout per read, and
    MCPD_UPSTREAM_MAX_BODY_BYTES per event.
    """

    def __init__(self, response: requests.Response, provider: str, deadline: float | None = None):
        self._response = response
        self.provider = provider
        self.status = response.status_code
        self.retry_after = safe_retry_after(response.headers.get("Retry-After"))
        self._deadline = deadline

    @property
    def is_event_stream(self) -> bool:
        return self._response.headers.get("Content-Type", "").startswith("text/event-stream")

    def body(self, redact: Callable[[bytes], bytes] | None = None) -> bytes:
        """The whole body (`redact` applied to it); one larger than MCPD_UPSTREAM_MAX_BODY_BYTES is a 502."""
        limit = settings.UPSTREAM_MAX_BODY_BYTES
        declared = self._response.headers.get("Content-Length", "")
        too_large = bad_response(self.provider, f"a reply larger than mcpd accepts ({limit} bytes)")
        if declared.isdigit() and int(declared) > limit:
            raise too_large  # not read at all
        raw = self._read_all(limit, too_large=too_large)
        return redact(raw) if redact else raw

    def parse(self, raw: bytes) -> Any:
        """A body as JSON; one that is not JSON is a 502."""
        try:
            return wirejson.loads(raw)
        except ValueError:
            raise bad_response(self.provider, "a reply that is not JSON") from None

    def error_payload(self) -> Any:
        """The body of an error reply: JSON when it parses, else its text (bounded), else None."""
        try:
            raw = self._read_all(MAX_ERROR_BODY, too_large=None)
        except ApiError:
            return None
        try:
            return wirejson.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace") or None

    def events(self) -> Iterator[SseEvent]:
        """The provider's server-sent events, each as soon as it is complete."""
        with self._reading_a_stream():
            for block in self._event_blocks():
                try:
                    event = parse_event(block)
                except UnicodeDecodeError:
                    raise bad_response(self.provider, "a stream event that is not UTF-8") from None
                if event is not None:
                    yield SseEvent(event=event[0], data=event[1])

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes as they arrive, whole events at a time (never half of one: a failure's own
        event may follow), for a passthrough that relays them as they came."""
        with self._reading_a_stream():
            splitter = self._splitter()
            for data in self._raw_chunks():
                done, _ = splitter.split(data)
                if done:
                    yield done
            if rest := splitter.rest():  # the last event without its blank line: it ends here
                yield rest + b"\n\n"

    def _event_blocks(self) -> Iterator[bytes]:
        splitter = self._splitter()
        for data in self._raw_chunks():
            yield from splitter.split(data)[1]
        if rest := splitter.rest():
            yield rest

    def _splitter(self) -> EventSplitter:
        return EventSplitter(limit=settings.UPSTREAM_MAX_BODY_BYTES)

    @contextlib.contextmanager
    def _reading_a_stream(self) -> Iterator[None]:
        try:
            yield
        except EventTooLarge:
            raise bad_response(self.provider, f"a stream event larger than mcpd accepts "
                                              f"({settings.UPSTREAM_MAX_BODY_BYTES} bytes)") from None
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if _is_timeout(exc):
                raise Timeout(f"The {self.provider} provider sent nothing within the read timeout.",
                              code=UPSTREAM_TIMEOUT) from None
            raise UpstreamError(f"The {self.provider} provider dropped the connection mid-stream.",
                                code=UPSTREAM_STREAM_INCOMPLETE) from None

    def shutdown(self) -> None:
        """Stop a read in progress in another thread (or greenlet): it fails at once."""
        with contextlib.suppress(OSError, AttributeError):  # already closed
            self._response.raw.shutdown()

    def close(self) -> None:
        """Close the connection (an unfinished stream is not returned to the pool: it is dropped)."""
        self._response.close()

    def _raw_chunks(self) -> Iterator[bytes]:
        raw = self._response.raw
        while True:
            # Whatever has arrived, never waiting to fill a buffer; decoded as the provider encoded it
            # (requests asks for gzip and deflate, and leaves the decoding to whoever reads .raw).
            data = raw.read1(READ_SIZE, decode_content=True)
            if not data:
                return
            yield data

    def _read_all(self, limit: int, too_large: ApiError | None) -> bytes:
        """The body (decoded), read as it arrives, by the deadline: up to `limit` bytes, or `too_large` raised
        for a longer one (None: its first `limit` bytes)."""
        parts, size = [], 0
        try:
            while size <= limit:
                data = self._response.raw.read1(min(READ_SIZE, limit + 1 - size), decode_content=True)
                if not data:
                    break
                size += len(data)
                if size > limit:
                    if too_large is not None:
                        raise too_large
                    parts.append(data[:len(data) - (size - limit)])  # the first `limit` bytes
                    break
                parts.append(data)
                if self._deadline is not None and time.monotonic() > self._deadline:
                    raise Timeout(f"The {self.provider} provider did not send its whole reply within the read "
                                  "timeout.", code=UPSTREAM_TIMEOUT)
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if _is_timeout(exc):
                raise Timeout(f"The {self.provider} provider stopped sending within the read timeout.",
                              code=UPSTREAM_TIMEOUT) from None
            raise bad_response(self.provider, "an incomplete reply (the connection dropped)") from None
        return b"".join(parts)


def _is_timeout(exc: BaseException) -> bool:
    """requests wraps a read timeout met while reading a body in a ConnectionError: look inside."""
    timeouts = (requests.exceptions.Timeout, ReadTimeoutError, TimeoutError)
    return isinstance(exc, timeouts) or any(isinstance(arg, timeouts) for arg in exc.args)


@sensitive_variables("request")
def post(request: UpstreamRequest, *, stream: bool, provider: str) -> UpstreamResponse:
    """Send the request; the response's headers have arrived when this returns (its body may not have)."""
    timeout = (settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT)
    # A whole reply must be in by then (a stream has the read timeout per read instead): a provider that
    # trickles its body would otherwise hold the call for as long as it likes.
    deadline = time.monotonic() + settings.UPSTREAM_READ_TIMEOUT
    try:
        # A redirect is never followed: requests would re-send x-api-key to whatever host Location
        # names, and turn the call into a GET of any URL. The 3xx itself becomes a 502.
        response = SESSION.post(request.url, headers=request.headers, data=wirejson.dumps(request.json),
                                timeout=timeout, stream=True, allow_redirects=False)
    except requests.exceptions.ConnectTimeout:
        raise Timeout(f"The {provider} provider did not accept the connection in time.", code=UPSTREAM_TIMEOUT) from None
    except requests.exceptions.ReadTimeout:
        raise Timeout(f"The {provider} provider did not answer within the read timeout.", code=UPSTREAM_TIMEOUT) from None
    except requests.exceptions.InvalidURL:
        raise UpstreamError(f"The {provider} base URL is not valid.", code=UPSTREAM_UNREACHABLE) from None
    except (requests.RequestException, Urllib3Error, OSError):
        raise UpstreamError(f"The {provider} provider is unreachable.", code=UPSTREAM_UNREACHABLE) from None
    return UpstreamResponse(response, provider, deadline)
