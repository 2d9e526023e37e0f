"""HTTP views for the catalogue. Thin: authenticate, find, check, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.generics import ListAPIView, RetrieveAPIView

from llms.permissions import LLM_NAME, visible_llms
from llms.serializers import LlmSerializer
from mcpd import schema
from mcpd.errors import NotFound


@extend_schema_view(get=extend_schema(responses={200: LlmSerializer(many=True),
                                                 **schema.error_responses(*schema.AUTH_ERRORS)}))
class LlmList(ListAPIView):
    """The catalogue entries the caller may view or run."""

    serializer_class = LlmSerializer

    def get_queryset(self):
        return visible_llms(self.request.user).prefetch_related("deployments", "fallbacks__to")


@extend_schema_view(get=extend_schema(parameters=[schema.LLM_NAME], responses={
    200: LlmSerializer, **schema.error_responses(*schema.AUTH_ERRORS, 404)}))
class LlmDetail(RetrieveAPIView):
    """One catalogue entry the caller may view or run."""

    serializer_class = LlmSerializer
    lookup_field = "name"

    def get_object(self):
        name = self.kwargs["name"]
        llm = (visible_llms(self.request.user).prefetch_related("deployments", "fallbacks__to").filter(name=name).first()
               if LLM_NAME.fullmatch(name) else None)
        if llm is None:
            raise NotFound(f"No Llm named '{self.kwargs['name']}' is visible to you.")
        return llm
