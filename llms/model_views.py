"""GET /v1/models and /v1/models/{name}: the Llms the caller may run, in OpenAI's list shape, or in
Anthropic's when the request carries `anthropic-version` (as the Anthropic SDKs and Claude Code send it).

https://platform.openai.com/docs/api-reference/models/list
https://docs.anthropic.com/en/api/models-list
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llms.inference_views import JsonOnly
from llms.models import Llm
from llms.permissions import llm_to_run, runnable_llms
from mcpd.auth import ApiKeyHeaderAuthentication, BearerTokenAuthentication
from mcpd.errors import InvalidRequest
from mcpd.schema import AUTH_ERRORS, LLM_NAME, error_responses

ANTHROPIC_LIMIT = (1, 1000, 20)  # the `limit` Anthropic's list accepts: min, max, default


def openai_entry(llm: Llm) -> dict[str, Any]:
    """An Llm as an OpenAI model object, with its context window when the catalogue knows it (the name
    Codex's model metadata gives it; OpenAI clients ignore keys they do not know)."""
    entry = {"id": llm.name, "object": "model", "created": int(llm.created_at.timestamp()), "owned_by": llm.provider}
    if llm.context_window is not None:
        entry["context_window"] = llm.context_window
    return entry


def anthropic_entry(llm: Llm) -> dict[str, Any]:
    """An Llm as an Anthropic ModelInfo."""
    created = llm.created_at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": llm.name, "display_name": llm.description.strip().splitlines()[0][:100]
            if llm.description.strip() else llm.name, "created_at": created}


def anthropic_page(llms: list[Llm], params) -> dict[str, Any]:
    """Anthropic's page of a list: `limit`, and `after_id` or `before_id` (ids of the list's order)."""
    low, high, default = ANTHROPIC_LIMIT
    try:
        limit = int(params.get("limit", default))
    except ValueError:
        raise InvalidRequest("limit: must be an integer.") from None
    if not low <= limit <= high:
        raise InvalidRequest(f"limit: must be between {low} and {high}.")
    ids = [llm.name for llm in llms]
    start, end = 0, len(llms)
    if params.get("after_id") in ids:
        start = ids.index(params["after_id"]) + 1
    if params.get("before_id") in ids:
        end = ids.index(params["before_id"])
        start = max(start, end - limit)
    page = llms[start:end][:limit]
    return {"data": [anthropic_entry(llm) for llm in page], "has_more": start + len(page) < end,
            "first_id": page[0].name if page else None, "last_id": page[-1].name if page else None}


def wants_anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers


class ModelViews(APIView):
    content_negotiation_class = JsonOnly
    authentication_classes = [BearerTokenAuthentication, ApiKeyHeaderAuthentication, SessionAuthentication]


class Models(ModelViews):
    """GET /v1/models — the Llms the caller may run."""

    @extend_schema(operation_id="models_list", responses={200: OpenApiTypes.OBJECT,
                                                          **error_responses(400, *AUTH_ERRORS)},
                   parameters=[OpenApiParameter("limit", int, description="Anthropic shape only: 1-1000 (20)"),
                               OpenApiParameter("after_id", str), OpenApiParameter("before_id", str),
                               OpenApiParameter("anthropic-version", str, OpenApiParameter.HEADER,
                                                description="present: Anthropic's list shape")],
                   summary="The Llms the caller may run: an OpenAI model list, or Anthropic's with anthropic-version.")
    def get(self, request: Request) -> Response:
        runnable = runnable_llms(request.user).filter(enabled=True)
        if wants_anthropic(request):  # Anthropic lists newest first
            return Response(anthropic_page(list(runnable.order_by("-created_at", "name")), request.query_params))
        return Response({"object": "list", "data": [openai_entry(llm) for llm in runnable.order_by("name")]})


class ModelDetail(ModelViews):
    """GET /v1/models/{name} — one Llm the caller may run (403/404 as for inference)."""

    @extend_schema(operation_id="models_retrieve", parameters=[LLM_NAME],
                   responses={200: OpenApiTypes.OBJECT, **error_responses(*AUTH_ERRORS, 403, 404)},
                   summary="One Llm the caller may run, as an OpenAI model object (or Anthropic's ModelInfo).")
    def get(self, request: Request, name: str) -> Response:
        llm = llm_to_run(request.user, name)
        return Response(anthropic_entry(llm) if wants_anthropic(request) else openai_entry(llm))
