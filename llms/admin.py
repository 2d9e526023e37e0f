from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from llms.models import Llm


@admin.register(Llm)
class LlmAdmin(GuardedModelAdmin):
    list_display = ["name", "provider", "model", "effective_base_url", "has_api_key", "enabled", "updated_at"]
    list_filter = ["provider", "enabled"]
    search_fields = ["name", "model", "description"]
    autocomplete_fields = ["api_key_secret"]
    readonly_fields = ["created_at", "updated_at"]
    fields = ["name", "provider", "model", "base_url", "api_key_secret", "default_max_tokens", "enabled",
              "description", "created_at", "updated_at"]

    # Where a key goes is as sensitive as the key: an editor who could point a key-bearing Llm at a
    # server of theirs, or attach another secret, would receive that key with the next call. Only
    # superusers choose an Llm's secret, or move an Llm that has one.
    KEY_ROUTING_FIELDS = ["api_key_secret", "base_url", "provider"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if not request.user.is_superuser:
            readonly += self.KEY_ROUTING_FIELDS if obj is not None and obj.has_api_key else ["api_key_secret"]
        return readonly

    def get_autocomplete_fields(self, request):
        return self.autocomplete_fields if request.user.is_superuser else []

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, obj: Llm) -> bool:
        return obj.has_api_key

    @admin.display(description="Base URL")
    def effective_base_url(self, obj: Llm) -> str:
        return obj.effective_base_url or "—"

    # Granting run is spend: it needs its own permission, not `change_llm` (a catalogue editor
    # must not be able to grant themselves run from the "Object permissions" page).
    def _may_grant(self, request) -> bool:
        return request.user.is_active and (request.user.is_superuser or request.user.has_perm("llms.grant_run_llm"))

    def obj_perms_manage_view(self, request, object_pk):
        self._require_grant(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._require_grant(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._require_grant(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def _require_grant(self, request) -> None:
        if not self._may_grant(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Granting run on an LLM needs the 'grant run' permission.")
