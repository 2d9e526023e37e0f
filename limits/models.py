"""Limit: what a user, a group, a token or everyone may spend, on one Llm or on all of them together;
Counter and Lease: the shared state that enforces limits across every worker and host (limits/store.py),
when no Redis holds it."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from llms.models import Llm
from mcpd.models import ApiToken


class Period(models.TextChoices):
    DAY = "day", "per day (UTC)"
    MONTH = "month", "per month (UTC)"


class Limit(models.Model):
    """Caps on the calls of one subject (a user, a group's members together, a token, or everyone
    together), on one Llm or on every Llm together. Each cap set is enforced on every inference route."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="limits")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="limits")
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.CASCADE, related_name="limits")
    everyone = models.BooleanField(default=False, help_text="Every call together, whoever makes it.")
    llm = models.ForeignKey(Llm, null=True, blank=True, on_delete=models.CASCADE, related_name="limits",
                            help_text="Blank: the subject's calls to every Llm, together.")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)],
                                                    help_text="Prompt and completion tokens.")
    concurrent = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)],
                                             help_text="Calls in progress at once (streams until they end).")
    budget = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                 validators=[MinValueValidator(0)], help_text="In MCPD_CURRENCY, per period.")
    period = models.CharField(max_length=5, choices=Period.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}{' on ' + self.llm.name if self.llm_id else ''}: {self.caps}"

    @property
    def subject(self) -> str:
        if self.user_id:
            return f"user {self.user}"
        if self.group_id:
            return f"group {self.group}"
        if self.token_id:
            return f"token #{self.token_id}"
        return "everyone"

    @property
    def caps(self) -> str:
        parts = [f"{self.requests_per_minute} requests/min" if self.requests_per_minute else "",
                 f"{self.tokens_per_minute} tokens/min" if self.tokens_per_minute else "",
                 f"{self.concurrent} at once" if self.concurrent else "",
                 f"budget {self.budget} {settings.CURRENCY} per {self.period}" if self.budget is not None else ""]
        return ", ".join(part for part in parts if part) or "no cap"

    def clean(self) -> None:
        subjects = [self.user_id is not None, self.group_id is not None, self.token_id is not None, self.everyone]
        if sum(subjects) != 1:
            raise ValidationError("A limit applies to exactly one of: a user, a group, a token, everyone.")
        if not any(cap is not None for cap in (self.requests_per_minute, self.tokens_per_minute, self.concurrent,
                                                self.budget)):
            raise ValidationError("Set at least one of: requests per minute, tokens per minute, concurrent, budget.")
        if (self.budget is None) != (not self.period):
            raise ValidationError({"period": "A budget needs a period (day or month), and a period a budget."})


class Counter(models.Model):
    """One window's count of one limit (requests, tokens, or cost in billionths of the currency), and the
    cap it was last checked against. Times are Unix seconds (integers compare faster than dates)."""

    key = models.CharField(max_length=120, primary_key=True)
    value = models.BigIntegerField(default=0)
    cap = models.BigIntegerField(default=0)
    expires = models.BigIntegerField(db_index=True, help_text="When the window's row may be deleted.")


class Lease(models.Model):
    """One call in progress under a concurrency limit; it lapses at `expires` if its process died."""

    key = models.CharField(max_length=120)
    call_id = models.CharField(max_length=64)
    expires = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["key", "expires"], name="lease_live"),
                   models.Index(fields=["call_id"], name="lease_call")]
