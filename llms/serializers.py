from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from llms.models import Deployment, Llm, redact_userinfo


class DeploymentSerializer(serializers.ModelSerializer):
    """Another deployment of the Llm: where, as what model, its weight; whether it has a key."""

    base_url = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    has_api_key = serializers.SerializerMethodField()

    def get_base_url(self, deployment: Deployment) -> str:
        return redact_userinfo(deployment.effective_base_url)

    def get_model(self, deployment: Deployment) -> str:
        return deployment.model or deployment.llm.model

    def get_has_api_key(self, deployment: Deployment) -> bool:
        return deployment.api_key_secret_id is not None

    class Meta:
        model = Deployment
        fields = ["id", "base_url", "model", "weight", "enabled", "has_api_key"]
        read_only_fields = fields


class LlmSerializer(serializers.ModelSerializer):
    """A catalogue entry as the API shows it: whether it has a key, never the key or the secret's name."""

    has_api_key = serializers.BooleanField(read_only=True)
    base_url = serializers.CharField(source="shown_base_url", read_only=True)
    currency = serializers.SerializerMethodField(help_text="The currency of the prices (MCPD_CURRENCY).")
    deployments = DeploymentSerializer(many=True, read_only=True,
                                       help_text="Its deployments beside the one of base_url, model and key.")
    fallbacks = serializers.SerializerMethodField(help_text="The Llms tried in order when every deployment fails.")

    def get_currency(self, llm: Llm) -> str:
        return settings.CURRENCY

    def get_fallbacks(self, llm: Llm) -> list[str]:
        return [fallback.to.name for fallback in llm.fallbacks.all()]

    class Meta:
        model = Llm
        fields = ["name", "provider", "model", "base_url", "description", "enabled", "context_window", "price_input", "price_output",
                  "price_cache_read", "price_cache_write", "currency", "has_api_key", "weight", "max_attempts",
                  "deployments", "fallbacks", "created_at", "updated_at"]
        read_only_fields = fields
