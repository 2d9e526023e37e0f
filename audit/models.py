"""AuditEvent: one row per inference call, and one per change to the catalogue, secrets, tokens, grants."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from audit.latency import BUCKET_COLUMNS

INFERENCE = "llm_inference_call"


class Api(models.TextChoices):
    """The inbound API of an inference call."""

    CHAT_COMPLETIONS = "chat_completions", "chat.completions"
    MESSAGES = "messages", "Anthropic Messages"
    RESPONSES = "responses", "Responses"
    COUNT_TOKENS = "count_tokens", "count_tokens"


class Outcome(models.TextChoices):
    OK = "ok", "ok"
    ERROR = "error", "error"
    CLIENT_DISCONNECTED = "client_disconnected", "client disconnected"


class AuditEvent(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=40)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor = models.CharField(max_length=150, blank=True, help_text="Who made a change (username or command).")
    token_sha = models.CharField(max_length=64, blank=True)
    # inference calls
    llm_name = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=200, blank=True)
    streaming = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_read_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Prompt tokens read from "
                                                    "the provider's prompt cache (part of prompt_tokens).")
    cache_write_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Prompt tokens written to "
                                                     "the provider's prompt cache (part of prompt_tokens).")
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True,
                               help_text="In MCPD_CURRENCY, from the Llm's prices when the call was made; blank "
                                         "when a price or a token count is unknown.")
    api = models.CharField(max_length=20, choices=Api.choices, blank=True, help_text="The inbound API.")
    error = models.TextField(blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # changes
    object_type = models.CharField(max_length=40, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The admin's order, and each of its filters and exact searches followed by that order, so a page
        # is one index range read backwards (audit/admin.py); `manage.py audit prune` reads the first.
        indexes = [models.Index(fields=["created_at", "id"], name="audit_created"),
                   models.Index(fields=["kind", "created_at", "id"], name="audit_kind_created"),
                   models.Index(fields=["outcome", "created_at", "id"], name="audit_outcome_created"),
                   models.Index(fields=["llm_name", "created_at", "id"], name="audit_llm_created"),
                   models.Index(fields=["actor", "created_at", "id"], name="audit_actor_created"),
                   models.Index(fields=["token_sha", "created_at", "id"], name="audit_token_created"),
                   models.Index(fields=["request_id"], name="audit_request_id")]
        permissions = [("view_metrics", "Can read /metrics (for a Prometheus scraper's token)")]

    def __str__(self) -> str:
        if self.kind == INFERENCE:
            return f"{self.kind} {self.llm_name} {self.status} {self.outcome}"
        return f"{self.kind} {self.object_type} {self.object_repr}"


class UsageDay(models.Model):
    """Usage per day (UTC), Llm, user and token: kept current in the transaction that writes the calls'
    audit rows (audit/rollups.py), so every figure shown reads these rows, never the audit table. Kept
    when audit rows are pruned. Also holds the successful calls' latency histograms (columns added below)."""

    day = models.DateField()
    llm_name = models.CharField(max_length=100, blank=True)
    user_id = models.IntegerField(default=0, help_text="0: no user (a call refused before authentication).")
    token_sha = models.CharField(max_length=64, blank=True)
    calls = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    unpriced_calls = models.PositiveBigIntegerField(default=0, help_text="Calls whose cost is unknown (not in cost).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "llm_name", "user_id", "token_sha"],
                                               name="usage_day_key")]
        indexes = [models.Index(fields=["user_id", "day"], name="usage_day_user")]
        ordering = ["-day", "llm_name"]
        verbose_name = "usage per day"
        verbose_name_plural = "usage per day"

    def __str__(self) -> str:
        return f"{self.day} {self.llm_name} user {self.user_id}"


# The latency histograms (audit/latency.py): one count per bucket, as columns so that the rollups' upsert adds
# them up like every other sum. 0 is also the database's default: a server still running code from before
# them (during a rolling deploy) goes on inserting rollups.
for _column in BUCKET_COLUMNS:
    UsageDay.add_to_class(_column, models.PositiveBigIntegerField(default=0, db_default=0, editable=False))
