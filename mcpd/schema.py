"""OpenAPI (drf-spectacular) pieces: the bearer scheme, the error body, and schemas for views it cannot guess."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


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


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The contract's error body for each status."""
    return {status: OpenApiResponse(ERROR) for status in statuses}


CHAT_RESPONSES = {
    200: OpenApiResponse(OpenApiTypes.OBJECT, description="An OpenAI chat.completion object; with "
                         '"stream": true, a text/event-stream of chat.completion.chunk events ending in '
                         "data: [DONE]."),
    **error_responses(400, 401, 403, 404, 413, 429, 501, 502, 504),
}
