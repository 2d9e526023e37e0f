"""/v1/responses: the OpenAI Responses API (what Codex and `client.responses` speak), for any provider.

Stateless: mcpd stores no responses, so `previous_response_id` and `conversation` are refused and the
routes that read stored responses answer 404. The WebSocket transport is refused with a 426 at once, so
that clients fall back to HTTP without waiting. Authentication, permission, limits, audit and the error
shape are those of /v1/chat/completions.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from audit.models import Api
from audit.recorder import Caller
from llms import proxy
from llms.inference_views import InferenceView, JsonOnly, model_named
from llms.models import Llm
from llms.streaming import Answer, ProxyStream
from mcpd.errors import ApiError, NotFound, UpgradeRequired
from mcpd.http import error_response, read_body
from mcpd.schema import EXAMPLE_LLM, INFERENCE_ERRORS, answer_or_stream, call_examples, error_responses

RESPONSES_RESPONSES = {
    **answer_or_stream("A Response object.", "Responses events: response.created … and one terminal event, "
                       "response.completed, response.incomplete or response.failed."),
    **error_responses(*INFERENCE_ERRORS),
}


def websocket_refused() -> HttpResponseBase:
    return error_response(UpgradeRequired(
        "mcpd serves the Responses API over HTTP only: POST /v1/responses.", code="websocket_not_supported"))


class Responses(InferenceView):
    """POST /v1/responses — `model` names the Llm; GET (a WebSocket upgrade) is refused with a 426."""

    api = Api.RESPONSES

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "GET":  # before authentication: the client's fallback must not wait
            return self.get(request)
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(operation_id="responses_create", request=OpenApiTypes.OBJECT, responses=RESPONSES_RESPONSES,
                   examples=call_examples({"model": EXAMPLE_LLM, "input": "Say hello"}),
                   summary="The OpenAI Responses API on any Llm, stateless: `model` is the name of an Llm.")
    def post(self, request: Request) -> HttpResponseBase:
        body = read_body(request)
        self._streaming = body.get("stream") is True
        return self.serve(model_named(body), body)

    @extend_schema(operation_id="responses_websocket", responses={426: error_responses(426)[426]},
                   summary="The Responses WebSocket transport: not served (426), use POST.")
    def get(self, request: HttpRequest) -> HttpResponseBase:
        return websocket_refused()

    def run(self, caller: Caller, llm: Llm, body: dict[str, Any]) -> Answer | ProxyStream:
        return proxy.responses(caller, llm, body)


def not_stored() -> HttpResponseBase:
    error: ApiError = NotFound("mcpd stores no responses: send the whole input with each POST /v1/responses.",
                               code="response_not_found")
    return error_response(error)


NOT_STORED = {"request": None, "responses": error_responses(404), "auth": [],
              "description": "mcpd is stateless: there are no stored responses (always 404)."}


class StoredResponse(APIView):
    """/v1/responses/{id}[/…] (retrieve, delete, cancel, input_items): there are no stored responses, for
    anyone (no authentication: there is nothing to protect)."""

    authentication_classes: list = []
    permission_classes: list = []
    content_negotiation_class = JsonOnly

    @extend_schema(operation_id="responses_retrieve", summary="A stored response, or its input items.", **NOT_STORED)
    def get(self, request: Request, rest: str) -> HttpResponseBase:
        return not_stored()

    @extend_schema(operation_id="responses_cancel", summary="Cancel a background response.", **NOT_STORED)
    def post(self, request: Request, rest: str) -> HttpResponseBase:
        return not_stored()

    @extend_schema(operation_id="responses_delete", summary="Delete a stored response.", **NOT_STORED)
    def delete(self, request: Request, rest: str) -> HttpResponseBase:
        return not_stored()
