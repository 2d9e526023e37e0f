"""manage.py limit set|list|clear — caps on what users, groups, tokens or everyone may spend."""

from __future__ import annotations

import argparse

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from limits.models import Limit, Period
from llms.models import Llm
from mcpd.commands import SubcommandCommand, non_negative_decimal
from mcpd.models import ApiToken

CAPS = ("requests_per_minute", "tokens_per_minute", "concurrent", "budget")


amount = non_negative_decimal("a budget")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class Command(SubcommandCommand):
    help = "Manage limits: requests and tokens per minute, concurrent calls and budgets."
    subcommands = {
        "set": "Set the limit of a subject (on one Llm, or on all together): exactly the caps given.",
        "list": "List the limits.",
        "clear": "Delete a limit by its ID.",
    }

    def add_set_arguments(self, parser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user")
        who.add_argument("--group")
        who.add_argument("--token", type=int, metavar="ID", help="an API token's ID (manage.py token list)")
        who.add_argument("--everyone", action="store_true", help="every call together")
        parser.add_argument("--llm", metavar="NAME", help="only calls to this Llm (default: all Llms together)")
        parser.add_argument("--rpm", type=positive, help="requests per minute")
        parser.add_argument("--tpm", type=positive, help="tokens (prompt and completion) per minute")
        parser.add_argument("--concurrent", type=positive, help="calls in progress at once")
        parser.add_argument("--budget", type=amount, metavar="AMOUNT", help="in MCPD_CURRENCY, per --period")
        parser.add_argument("--period", choices=[p.value for p in Period])

    def handle_set(self, *, user, group, token, everyone, llm, rpm, tpm, concurrent, budget, period, **_) -> None:
        subject = {"user": self._find(get_user_model(), "username", user, "user"),
                   "group": self._find(Group, "name", group, "group"),
                   "token": self._find(ApiToken, "pk", token, "token"), "everyone": everyone}
        target = self._find(Llm, "name", llm, "Llm")
        limit = Limit.objects.filter(**{k: v for k, v in subject.items() if k != "everyone"},
                                     everyone=everyone, llm=target).first() or Limit(**subject, llm=target)
        created = limit.pk is None
        limit.requests_per_minute, limit.tokens_per_minute, limit.concurrent = rpm, tpm, concurrent
        limit.budget, limit.period = budget, period or ""
        try:
            limit.full_clean()
        except ValidationError as exc:
            self.fail(" ".join(exc.messages))
        limit.save()
        self.stdout.write(f"{'Set' if created else 'Updated'} limit {limit}")

    def _find(self, model, field: str, value, what: str):
        if value is None:
            return None
        found = model.objects.filter(**{field: value}).first()
        if found is None:
            self.fail(f"No {what} {value!r}.")
        return found

    def handle_list(self, **_) -> None:
        limits = list(Limit.objects.select_related("user", "group", "llm"))
        for limit in limits:
            self.stdout.write(str(limit))
        self.stdout.write(f"{len(limits)} limit(s).")

    def add_clear_arguments(self, parser) -> None:
        parser.add_argument("id", type=int)

    def handle_clear(self, *, id: int, **_) -> None:
        limit = Limit.objects.filter(pk=id).first()
        if limit is None:
            self.fail(f"No limit #{id}.")
        described = str(limit)
        limit.delete()
        self.stdout.write(f"Cleared limit {described}")
