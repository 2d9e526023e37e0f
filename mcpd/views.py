"""Project-wide endpoints: /healthz and the JSON 404/500 handlers for /api/ and /v1/."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views import defaults
from django.views.decorators.http import require_GET, require_http_methods
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mcpd.errors import InternalError, NotFound
from mcpd.http import error_response

API_PREFIXES = ("/api/", "/v1/")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, else 503; no authentication."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def not_found(request: HttpRequest, exception=None):
    """404 in the contract's error shape for API paths, Django's page elsewhere."""
    if _is_api(request):
        return error_response(NotFound(f"No route for {request.method} {request.path}."))
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest):
    """500 in the contract's error shape for API paths, Django's page elsewhere."""
    if _is_api(request):
        return error_response(InternalError("Internal server error."))
    return defaults.server_error(request)


@require_http_methods(["GET", "HEAD"])
def root(request: HttpRequest) -> HttpResponse:
    """HEAD / answers 200 (a client's connection probe, as Claude Code sends); a browser goes to the admin."""
    if request.method == "HEAD":
        return HttpResponse(status=200)
    return redirect("admin:index")


class Hello(APIView):
    """HEAD /api/hello: Claude Code's connection-warming probe; no authentication. (A DRF view for the
    schema, and so that other methods get the contract's 405.)"""

    authentication_classes: list = []
    permission_classes: list = []

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)  # JSON, whatever the probe accepts

    @extend_schema(operation_id="hello", auth=[], summary="A connection probe (HEAD or GET): 200, no authentication.",
                   responses={200: inline_serializer("Hello", {"status": serializers.CharField()})})
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})
