"""ADAPTERS: provider -> adapter instance (cached: adapters hold no per-call state)."""

from __future__ import annotations

from llms.adapters.anthropic import AnthropicAdapter
from llms.adapters.base import Adapter
from llms.adapters.passthrough import PassthroughAdapter
from mcpd.errors import UnsupportedProvider

ADAPTERS: dict[str, Adapter] = {
    "openai": PassthroughAdapter("openai"),
    "deepseek": PassthroughAdapter("deepseek"),
    "vllm": PassthroughAdapter("vllm"),
    "ollama": PassthroughAdapter("ollama"),
    "anthropic": AnthropicAdapter(),
}


def get_adapter(provider: str) -> Adapter:
    """The adapter for a provider; UnsupportedProvider (501) for one mcpd cannot serve (e.g. gemini-cli)."""
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise UnsupportedProvider(f"Provider '{provider}' is not supported for inference.") from None
