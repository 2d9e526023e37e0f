from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit rows are written by mcpd alone."""

    list_display = ["created_at", "kind", "actor", "llm_name", "object_repr", "status", "outcome",
                    "duration_ms", "prompt_tokens", "completion_tokens", "cost"]
    list_filter = ["kind", "outcome", "streaming", "provider", "status", "created_at"]
    search_fields = ["llm_name", "actor", "request_id", "object_repr", "token_sha"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
