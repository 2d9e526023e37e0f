"""GET /api/v1/usage/: usage from the rollups, the caller's own (everyone's with audit.view_auditevent)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.usage import GROUP_BY, Span, usage
from mcpd.schema import AUTH_ERRORS, error_responses

VIEW_ALL = "audit.view_auditevent"


def as_json(figures: dict) -> dict:
    """Figures as the API gives them: the cost a decimal string."""
    return {key: format(value.normalize(), "f") if key == "cost" else value for key, value in figures.items()}


class Usage(APIView):
    @extend_schema(operation_id="usage", responses={200: OpenApiTypes.OBJECT, **error_responses(400, *AUTH_ERRORS)},
                   parameters=[OpenApiParameter("group_by", str, enum=GROUP_BY, description="default llm"),
                               OpenApiParameter("since", OpenApiTypes.DATE, description="default 29 days before until"),
                               OpenApiParameter("until", OpenApiTypes.DATE, description="default today (UTC)")],
                   summary="Calls, errors, tokens and cost per Llm, user, group or token, from the usage rollups.")
    def get(self, request: Request) -> Response:
        params = request.query_params
        group_by = params.get("group_by", "llm")
        span = Span.parse(params.get("since"), params.get("until"))
        everyone = request.user.has_perm(VIEW_ALL)
        entries, total = usage(group_by, span, user_id=None if everyone else request.user.pk)
        return Response({"group_by": group_by, "since": span.since, "until": span.until, "currency": settings.CURRENCY,
                         "scope": "everyone" if everyone else "own", "data": [as_json(entry) for entry in entries],
                         "total": as_json(total)})
