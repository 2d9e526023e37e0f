"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API, for any provider.

Authenticated by `x-api-key` or `Authorization: Bearer` (mcpd tokens), with the run permission, limits
and audit of the other inference routes; errors in Anthropic's shape. The query string is ignored
(Claude Code calls /v1/messages?beta=true).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from audit.models import Api
from audit.recorder import Caller
from llms import proxy
from llms.inbound.messages.errors import error_body, status_of
from llms.inference_views import InferenceView, model_named
from llms.models import Llm
from llms.streaming import Answer, ProxyStream
from mcpd.auth import ApiKeyHeaderAuthentication, BearerTokenAuthentication
from mcpd.errors import ApiError, AuthenticationFailed
from mcpd.http import json_response, read_body
from mcpd.schema import (
    ANTHROPIC_ERROR,
    EXAMPLE_LLM,
    HELLO,
    INFERENCE_ERRORS,
    answer_or_stream,
    call_examples,
    error_responses,
)

MESSAGES_RESPONSES = {
    **answer_or_stream("An Anthropic Message.", "Anthropic's events (message_start … message_stop)."),
    **error_responses(*INFERENCE_ERRORS, 529, shape=ANTHROPIC_ERROR),
}
COUNT_TOKENS_RESPONSES = {
    200: inline_serializer("InputTokens", {"input_tokens": serializers.IntegerField()}),
    **error_responses(*INFERENCE_ERRORS, 529, shape=ANTHROPIC_ERROR),
}


def retry_seconds(value: str) -> str:
    """Retry-After in whole seconds, as Claude Code reads it (an HTTP date becomes the seconds to it)."""
    if value.isdigit():
        return value
    try:
        return str(max(0, math.ceil((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())))
    except (TypeError, ValueError):
        return "1"


class AnthropicInferenceView(InferenceView):
    """A route of the Anthropic API: its authentication headers and its error shape."""

    authentication_classes = [BearerTokenAuthentication, ApiKeyHeaderAuthentication, SessionAuthentication]

    def error_response(self, error: ApiError, response: Response) -> HttpResponseBase:
        headers = {"retry-after": retry_seconds(error.retry_after)} if error.retry_after else {}
        if isinstance(error, AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="mcpd"'
        return json_response(error_body(error), status=status_of(error), headers=headers)

    def headers_to_forward(self) -> dict[str, str | None]:
        """The only client headers that go upstream, and only to an anthropic Llm."""
        return {"version": self.request.headers.get("anthropic-version"),
                "betas": self.request.headers.get("anthropic-beta")}


class Messages(AnthropicInferenceView):
    """POST /v1/messages — `model` names the Llm."""

    api = Api.MESSAGES

    @extend_schema(operation_id="messages_create", request=OpenApiTypes.OBJECT, responses=MESSAGES_RESPONSES,
                   examples=call_examples({"model": EXAMPLE_LLM, "max_tokens": 256, "messages": HELLO}),
                   summary="The Anthropic Messages API on any Llm: `model` is the name of an Llm.")
    def post(self, request: Request) -> HttpResponseBase:
        body = read_body(request)
        self._streaming = body.get("stream") is True
        return self.serve(model_named(body), body)

    def run(self, caller: Caller, llm: Llm, body: dict[str, Any]) -> Answer | ProxyStream:
        return proxy.messages(caller, llm, body, **self.headers_to_forward())


class CountTokens(AnthropicInferenceView):
    """POST /v1/messages/count_tokens — answered by anthropic Llms; 501 for the others."""

    api = Api.COUNT_TOKENS

    @extend_schema(operation_id="messages_count_tokens", request=OpenApiTypes.OBJECT,
                   responses=COUNT_TOKENS_RESPONSES,
                   examples=call_examples({"model": EXAMPLE_LLM, "messages": HELLO})[:1],  # it streams nothing
                   summary="Count a Messages body's input tokens (anthropic Llms; 501 otherwise).")
    def post(self, request: Request) -> HttpResponseBase:
        body = read_body(request)
        return self.serve(model_named(body), body)

    def run(self, caller: Caller, llm: Llm, body: dict[str, Any]) -> Answer:
        return proxy.count_tokens(caller, llm, body, **self.headers_to_forward())
