"""OpenAPI (drf-spectacular) pieces: the bearer scheme, the error body, and schemas for views it cannot guess."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

EXAMPLE_LLM = "my-llm"  # the Llm the schema's examples name


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "mcpd.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An mcpd API token (manage.py token issue)."}


class ApiKeyHeaderScheme(OpenApiAuthenticationExtension):
    target_class = "mcpd.auth.ApiKeyHeaderAuthentication"
    name = "apiKeyHeader"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "x-api-key",
                "description": "An mcpd API token, as the Anthropic SDKs send a key."}


ERROR = inline_serializer("Error", {"error": inline_serializer("ErrorDetail", {
    "message": serializers.CharField(),
    "type": serializers.CharField(),
    "param": serializers.CharField(allow_null=True),
    "code": serializers.CharField(allow_null=True),
})})


# On /v1/messages and /v1/messages/count_tokens (CONTRACT.md: "On /v1/messages errors take Anthropic's shape").
ANTHROPIC_ERROR = inline_serializer("AnthropicError", {
    "type": serializers.ChoiceField(choices=["error"]),
    "error": inline_serializer("AnthropicErrorDetail", {
        "type": serializers.CharField(),
        "message": serializers.CharField(),
    }),
})

# Every call of an inference route may meet these (501: the Llm's provider; 502, 504: the provider's failures).
INFERENCE_ERRORS = (400, 401, 403, 404, 413, 429, 501, 502, 504)
# An authenticated route: 401 without a valid token, 429 once an address has failed too often.
AUTH_ERRORS = (401, 429)


def error_responses(*statuses: int, shape: Any = ERROR) -> dict[int, OpenApiResponse]:
    """The contract's error body (or another shape) for each status."""
    return {status: OpenApiResponse(shape) for status in statuses}


# One event of a text/event-stream, as its `event:` and `data:` lines give it (data: a JSON text, or [DONE]).
SSE_EVENT = inline_serializer("ServerSentEvent", {
    "event": serializers.CharField(required=False),
    "data": serializers.CharField(),
})


def answer_or_stream(answer: str, stream: str) -> dict[tuple[int, str], OpenApiResponse]:
    """A 200 that is a JSON object, or with "stream": true an event stream (free-form objects here: their
    exact shapes are those of the OpenAI and Anthropic APIs, which their own specifications give)."""
    description = f'{answer} With "stream": true, a text/event-stream of {stream}'
    return {(200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description=description),
            (200, "text/event-stream"): OpenApiResponse(SSE_EVENT, description=description)}


def call_examples(body: dict[str, Any]) -> list[OpenApiExample]:
    """A request body as an example, whole and streamed."""
    return [OpenApiExample("a call", value=body, request_only=True),
            OpenApiExample("streamed", value={**body, "stream": True}, request_only=True)]


LLM_NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The name of an Llm.",
                            examples=[OpenApiExample("an Llm", value=EXAMPLE_LLM)])
HELLO = [{"role": "user", "content": "Say hello"}]

CHAT_RESPONSES = {
    **answer_or_stream("An OpenAI chat.completion object.",
                       "chat.completion.chunk events (data: lines), ending in data: [DONE]."),
    **error_responses(*INFERENCE_ERRORS),
}
