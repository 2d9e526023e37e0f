"""Inference routes: /api/v1/llms/{name}/infer and the OpenAI-compatible /v1/… routes, one code path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import connection
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import Api
from audit.recorder import Caller, refused
from llms import proxy
from llms.models import Llm
from llms.permissions import llm_to_run
from llms.streaming import Answer, ProxyStream
from mcpd.errors import ApiError, InternalError, InvalidRequest
from mcpd.http import answer_response, event_stream_response, read_body
from mcpd.middleware import client_ip
from mcpd.models import ApiToken
from mcpd.schema import CHAT_RESPONSES, EXAMPLE_LLM, HELLO, LLM_NAME, call_examples


class BodyLeftToTheView(BaseParser):
    """Parses nothing: the view reads the body itself (read_body: size limit, strict JSON). DRF still
    asks for a parser when CSRF checking a session's POST reads request.POST."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class JsonOnly(BaseContentNegotiation):
    """Inference answers JSON or an event stream it frames itself, whatever the client's Accept says."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return BodyLeftToTheView()


def release_db_connection() -> None:
    """Give the request's database connection back (to the pool, on PostgreSQL) before a long relay;
    the audit row is written later on a connection of its own. Inside a transaction (a test's) it stays."""
    if not connection.in_atomic_block:
        connection.close()


class InferenceView(APIView):
    """The inference routes' common part: authenticate, find the Llm, hand the call to the service.

    A call refused before the service takes it (authentication, permission, body) gets its one audit
    row here (audit.recorder.refused); the service records every call it takes.
    """

    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonOnly
    api = Api.CHAT_COMPLETIONS

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._served, self._name, self._streaming = False, kwargs.get("name", ""), False
        super().initial(request, *args, **kwargs)  # authentication and IsAuthenticated happen here

    def caller(self) -> Caller:
        """Who calls, for the audit row (no user when authentication failed)."""
        request = self.request
        anonymous = Caller(request_id=request._request.request_id, client_ip=client_ip(request))
        try:
            user, token = request.user, request.auth
        except ApiError:  # authentication itself failed (it is tried again on each access)
            return anonymous
        if not user.is_authenticated:
            return anonymous
        return replace(anonymous, user=user, token_sha=token.sha256 if isinstance(token, ApiToken) else "")

    def serve(self, name: str, body: dict[str, Any]) -> HttpResponseBase:
        """Run the body on the Llm `name`, if the caller may."""
        self._name, self._streaming = name, body.get("stream") is True
        llm = llm_to_run(self.request.user, name)
        self._served = True
        return self.respond(self.run(self.caller(), llm, body))

    def run(self, caller: Caller, llm: Llm, body: dict[str, Any]) -> Answer | ProxyStream:
        return proxy.chat_completion(caller, llm, body, api=self.api)

    def respond(self, result: Answer | ProxyStream) -> HttpResponseBase:
        if isinstance(result, ProxyStream):
            release_db_connection()  # a stream may last minutes: it holds no database connection meanwhile
            return event_stream_response(result)
        return answer_response(result)

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        response = super().handle_exception(exc)  # the contract's error body (mcpd.drf.exception_handler)
        # The error actually sent (the throttle may have turned a 401 into a 429); an unexpected
        # exception's text could hold anything: the audit row names its type only.
        error = getattr(response, "api_error", None)
        if error is None or isinstance(error, InternalError) and not isinstance(exc, ApiError):
            error = InternalError(f"Internal server error ({type(exc).__name__}).")
        if not self._served:
            refused(self.caller(), api=self.api, llm_name=self._name, error=error, status=response.status_code,
                    streaming=self._streaming)
        return self.error_response(error, response)

    def error_response(self, error: ApiError, response: Response) -> HttpResponseBase:
        """The error as this route's API shapes it (the contract's OpenAI shape here)."""
        return response


class Infer(InferenceView):
    """POST /api/v1/llms/{name}/infer — an OpenAI chat.completions body; `model` is ignored."""

    @extend_schema(operation_id="llm_infer", request=OpenApiTypes.OBJECT, responses=CHAT_RESPONSES,
                   parameters=[LLM_NAME], examples=call_examples({"messages": HELLO}),
                   summary="Run an OpenAI chat.completions request on the Llm named in the path.")
    def post(self, request: Request, name: str) -> HttpResponseBase:
        return self.serve(name, read_body(request))


class ChatCompletions(InferenceView):
    """POST /v1/chat/completions — OpenAI-SDK compatible: `model` names the Llm."""

    @extend_schema(operation_id="chat_completions", request=OpenApiTypes.OBJECT, responses=CHAT_RESPONSES,
                   examples=call_examples({"model": EXAMPLE_LLM, "messages": HELLO}),
                   summary="OpenAI-compatible chat.completions: `model` is the name of an Llm.")
    def post(self, request: Request) -> HttpResponseBase:
        body = read_body(request)
        self._streaming = body.get("stream") is True
        return self.serve(model_named(body), body)


def model_named(body: dict[str, Any]) -> str:
    """The Llm a /v1/ body names in `model` (a 400 without one)."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'model' is required: the name of an Llm (see GET /v1/models).")
    return name
