from __future__ import annotations

from rest_framework import serializers

from llms.models import Llm


class LlmSerializer(serializers.ModelSerializer):
    """A catalogue entry as the API shows it: whether it has a key, never the key or the secret's name."""

    has_api_key = serializers.BooleanField(read_only=True)
    base_url = serializers.CharField(source="shown_base_url", read_only=True)

    class Meta:
        model = Llm
        fields = ["name", "provider", "model", "base_url", "description", "enabled", "context_window", "has_api_key",
                  "created_at", "updated_at"]
        read_only_fields = fields
