from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from llms.models import Llm


class LlmSerializer(serializers.ModelSerializer):
    """A catalogue entry as the API shows it: whether it has a key, never the key or the secret's name."""

    has_api_key = serializers.BooleanField(read_only=True)
    base_url = serializers.CharField(source="shown_base_url", read_only=True)
    currency = serializers.SerializerMethodField(help_text="The currency of the prices (MCPD_CURRENCY).")

    def get_currency(self, llm: Llm) -> str:
        return settings.CURRENCY

    class Meta:
        model = Llm
        fields = ["name", "provider", "model", "base_url", "description", "enabled", "context_window", "price_input", "price_output",
                  "price_cache_read", "price_cache_write", "currency", "has_api_key",
                  "created_at", "updated_at"]
        read_only_fields = fields
