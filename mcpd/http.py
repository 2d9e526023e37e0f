"""The web side of the contract: request bodies in, error bodies and event streams out.

The services (llms/proxy.py) take dicts and give JSON bytes and stream items; what turns an HTTP request
into a body, and errors and stream items into bytes on the wire, is here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse

from mcpd import wirejson
from mcpd.errors import ApiError, InvalidRequest, TooLarge

JSON = "application/json"


def read_body(request) -> dict[str, Any]:
    """The request's JSON object (whatever Content-Type the client claimed); 413 when too large."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > settings.MAX_BODY_BYTES:
        raise TooLarge(f"The request body is larger than {settings.MAX_BODY_BYTES} bytes.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise TooLarge(f"The request body is larger than {settings.MAX_BODY_BYTES} bytes.") from None
    try:
        body = wirejson.loads(raw)
    except wirejson.JSONDecodeError as exc:
        # Strict JSON: NaN/Infinity are not numbers a provider accepts, and depth is bounded.
        raise InvalidRequest(f"The request body is not valid JSON (UTF-8, at most {wirejson.MAX_DEPTH} levels "
                             f"deep, no NaN or Infinity): {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    """A JSON response (orjson: bytes as they go out)."""
    data = body if isinstance(body, bytes) else wirejson.dumps(body)
    return HttpResponse(data, status=status, content_type=JSON, headers=headers)


def error_response(error: ApiError) -> HttpResponse:
    """The contract's error body for an ApiError, with its status and headers (Retry-After)."""
    return json_response(error.to_body(), status=error.status, headers=error.headers())


def sse_frame(event) -> bytes:
    """An Event of a stream (llms/streaming.py) as it goes on the wire: `event:` and `data:` lines, a
    comment, or a passthrough's bytes as they came."""
    if event.kind == "raw":
        return event.data
    if event.kind == "comment":
        return b": " + event.data + b"\n\n"
    head = b"event: " + event.name.encode() + b"\n" if event.name else b""
    return head + b"data: " + event.data + b"\n\n"


class SseBody:
    """A stream's Events framed for the wire; close() is the stream's (Django calls it at the end)."""

    def __init__(self, stream):
        self._stream = stream

    def __iter__(self):
        return map(sse_frame, self._stream)

    def close(self) -> None:
        self._stream.close()


def answer_response(answer) -> HttpResponse:
    """The response for a whole answer (llms/streaming.Answer); its audit row is written after it has
    been sent, by the server's closing of the response."""
    response = json_response(answer.body, headers=answer.headers)
    response._resource_closers.append(answer.close)
    return response


def event_stream_response(stream) -> StreamingHttpResponse:
    """The response for a stream (llms/streaming.ProxyStream), with the contract's headers."""
    response = StreamingHttpResponse(SseBody(stream), content_type="text/event-stream", headers=stream.headers)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
