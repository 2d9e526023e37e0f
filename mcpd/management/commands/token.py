"""manage.py token issue|list|revoke — API tokens; the plaintext is printed once, on issue."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from mcpd.commands import SubcommandCommand
from mcpd.models import ApiToken


class Command(SubcommandCommand):
    help = "Manage API tokens. Only a SHA-256 digest is stored; the token is printed once when issued."
    subcommands = {
        "issue": "Issue a token for a user; prints the token alone as the last line.",
        "list": "List tokens (prefix, name, user, created, last used, expiry, state), optionally of one user.",
        "revoke": "Revoke a token by its ID.",
    }

    def add_issue_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")
        parser.add_argument("--expires-days", type=int, default=None, help="expire after this many days")

    def handle_issue(self, *, username: str, name: str, expires_days: int | None, **_) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            self.fail(f"No user named '{username}'.")
        if expires_days is not None and expires_days <= 0:
            self.fail("--expires-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        token, plaintext = ApiToken.objects.issue(user, name=name, expires_at=expires_at)
        self.stdout.write(f"Issued token {token.pk} for '{username}'. Copy it now: it is not shown again.")
        self.stdout.write(plaintext)

    def add_list_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="?")

    def handle_list(self, *, username: str | None, **_) -> None:
        tokens = ApiToken.objects.select_related("user")
        if username:
            tokens = tokens.filter(user__username=username)
        rows = list(tokens)
        for t in rows:
            state = "revoked" if t.revoked else ("expired" if t.is_expired else "active")
            self.stdout.write("\t".join([
                str(t.pk), f"{t.prefix}…", t.name or "-", t.user.username, t.created_at.isoformat(timespec="seconds"),
                t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never",
                t.expires_at.isoformat(timespec="seconds") if t.expires_at else "no expiry", state,
            ]))
        self.stdout.write(f"{len(rows)} token(s).")

    def add_revoke_arguments(self, parser) -> None:
        parser.add_argument("id", type=int)

    def handle_revoke(self, *, id: int, **_) -> None:
        token = ApiToken.objects.filter(pk=id).first()
        if token is None:
            self.fail(f"No token with ID {id}.")
        if token.revoked:
            self.stdout.write(f"Token {id} was already revoked.")
            return
        token.revoked = True
        token.save(update_fields=["revoked"])
        self.stdout.write(f"Revoked token {id} ({token.prefix}…).")
