"""Llm: one catalogue entry — what a client names, and where and as what mcpd forwards its calls."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from llms.pricing import Prices
from secrets_app.models import Secret

RUN_PERM = "llms.run_llm"


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    DEEPSEEK = "deepseek", "DeepSeek"
    VLLM = "vllm", "vLLM"
    OLLAMA = "ollama", "Ollama"
    GEMINI_CLI = "gemini-cli", "Gemini CLI (not servable)"


DEFAULT_BASE_URLS: dict[str, str] = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com/v1",
    Provider.DEEPSEEK: "https://api.deepseek.com/v1",
    Provider.OLLAMA: "http://localhost:11434/v1",
}

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def validate_base_url(value: str) -> None:
    """An http(s) URL with a host and no userinfo. Bare host names count: `http://vllm:8000/v1` is how
    a Compose service or an internal host is named, and Django's URLValidator would refuse it."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok, parts = False, None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok
            or any(c.isspace() for c in value) or parts.query or parts.fragment):
        raise ValidationError("Enter an http:// or https:// URL (host, optional port and path).")
    if "@" in parts.netloc:  # a credential: it would be shown and audited like any other URL
        raise ValidationError("Remove the user:password@ part: a provider key belongs in the Llm's secret.")


def redact_userinfo(url: str) -> str:
    """The URL with any userinfo shown as `***@`. Rows saved before validate_base_url refused userinfo
    may hold one, and it is a credential: pages, the API and audit rows show URLs through this."""
    return _USERINFO.sub(r"\1***@", url)


def _price(what: str, blank: str = "Blank: unknown (calls then have no cost).") -> models.DecimalField:
    return models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                               validators=[MinValueValidator(0)],
                               help_text=f"Price of a million {what} tokens, in MCPD_CURRENCY. {blank}")


class Llm(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="What clients call it (the OpenAI `model`).")
    provider = models.CharField(max_length=20, choices=Provider.choices)
    model = models.CharField(max_length=200, help_text="The model name sent upstream.")
    base_url = models.CharField(
        max_length=500, blank=True, validators=[validate_base_url],
        help_text="Including the version path, e.g. https://host/v1. Blank: the provider's default.",
    )
    api_key_secret = models.ForeignKey(
        Secret, null=True, blank=True, on_delete=models.PROTECT, related_name="llms",
        help_text="The provider key. Empty: no auth header is sent.",
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    default_max_tokens = models.PositiveIntegerField(
        default=4096, validators=[MinValueValidator(1)],
        help_text="max_tokens sent when a client gives none (Anthropic requires one).",
    )
    price_input = _price("input")
    price_output = _price("output")
    price_cache_read = _price("cache read", "Blank: the input price.")
    price_cache_write = _price("cache write", "Blank: the input price.")
    weight = models.PositiveIntegerField(
        default=1, help_text="The share of calls this first deployment takes beside the Llm's other deployments "
                             "(each has its own weight). 0: a standby, called only when the others fail.",
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)],
        help_text="Deployments tried per call before it fails (or falls back), each a different one.",
    )
    context_window = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="The model's context window in tokens, as /v1/models tells clients (Codex). Blank: unknown.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM"
        permissions = [
            ("run_llm", "Can run inference on the LLM"),
            ("grant_run_llm", "Can grant and revoke run on LLMs"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_base_url(self) -> str:
        """The base URL calls go to: the Llm's own, else the provider's default ('' when none)."""
        return (self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")).rstrip("/")

    @property
    def shown_base_url(self) -> str:
        """effective_base_url as pages and the API show it: without a stored user:password@."""
        return redact_userinfo(self.effective_base_url)

    @property
    def prices(self) -> Prices:
        return Prices(self.price_input, self.price_output, self.price_cache_read, self.price_cache_write)

    @property
    def has_api_key(self) -> bool:
        return self.api_key_secret_id is not None

    def clean(self) -> None:
        if self.provider == Provider.VLLM and not self.base_url:
            raise ValidationError({"base_url": "A vllm Llm needs a base URL: vLLM has no public default."})


class Deployment(models.Model):
    """Another place that serves the Llm (a region, an account, a replica), beside the one its own base URL,
    secret and model name: calls are spread over them all by weight, and a failing one is stepped around."""

    llm = models.ForeignKey(Llm, on_delete=models.CASCADE, related_name="deployments")
    base_url = models.CharField(max_length=500, blank=True, validators=[validate_base_url],
                                help_text="Blank: the provider's default.")
    api_key_secret = models.ForeignKey(Secret, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="deployments",
                                       help_text="The provider key. Empty: no auth header is sent.")
    model = models.CharField(max_length=200, blank=True, help_text="Blank: the Llm's model.")
    weight = models.PositiveIntegerField(default=1, help_text="Its share of calls. 0: a standby.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.llm.name} deployment {self.pk}"

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URLS.get(self.llm.provider, "")).rstrip("/")

    def clean(self) -> None:
        if self.llm_id and self.llm.provider == Provider.VLLM and not self.base_url:
            raise ValidationError({"base_url": "A vllm deployment needs a base URL: vLLM has no public default."})


class Fallback(models.Model):
    """When every deployment of `llm` has failed a call before its first byte, `to` is tried (in
    `position` order). The caller needs run on `llm` only; `to`'s own limits and prices apply."""

    llm = models.ForeignKey(Llm, on_delete=models.CASCADE, related_name="fallbacks")
    to = models.ForeignKey(Llm, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["llm", "to"], name="fallback_once")]

    def __str__(self) -> str:
        return f"{self.llm.name} → {self.to.name}"

    def clean(self) -> None:
        if self.llm_id and self.llm_id == self.to_id:
            raise ValidationError("An Llm cannot fall back to itself.")


class LlmUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Llm, on_delete=models.CASCADE)


class LlmGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Llm, on_delete=models.CASCADE)
