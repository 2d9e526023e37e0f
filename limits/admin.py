from __future__ import annotations

from django.contrib import admin

from limits.models import Limit


@admin.register(Limit)
class LimitAdmin(admin.ModelAdmin):
    list_display = ["id", "subject", "llm", "requests_per_minute", "tokens_per_minute", "concurrent", "budget",
                    "period"]
    list_filter = ["everyone", "period"]
    list_select_related = ["user", "group", "llm"]
    autocomplete_fields = ["user", "group", "llm"]
    raw_id_fields = ["token"]
    fieldsets = [
        ("Whose calls (one of)", {"fields": ["user", "group", "token", "everyone"]}),
        ("Which Llm", {"fields": ["llm"]}),
        ("Caps (any of)", {"fields": ["requests_per_minute", "tokens_per_minute", "concurrent", "budget", "period"]}),
    ]
