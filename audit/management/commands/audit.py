"""manage.py audit prune — delete audit rows older than a number of days (the usage rollups stay)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from audit.recorder import record_change
from mcpd.commands import SubcommandCommand

PRUNE_BATCH = 10_000  # audit rows per DELETE


class Command(SubcommandCommand):
    help = "Maintain the audit log."
    subcommands = {"prune": "Delete audit events older than --older-than-days days."}

    def add_prune_arguments(self, parser) -> None:
        parser.add_argument("--older-than-days", type=int, required=True)

    def handle_prune(self, *, older_than_days: int, **_) -> None:
        if older_than_days < 1:
            self.fail("--older-than-days must be at least 1.")
        cutoff = timezone.now() - timedelta(days=older_than_days)
        old = AuditEvent.objects.filter(created_at__lt=cutoff)
        total = old.count()  # a range of the (created_at, id) index
        deleted = 0
        # In batches, oldest first: one DELETE of millions of rows would hold its locks (and, on SQLite,
        # every writer) for as long as it ran, and tell nothing meanwhile.
        while ids := list(old.order_by("created_at", "id").values_list("id", flat=True)[:PRUNE_BATCH]):
            deleted += AuditEvent.objects.filter(pk__in=ids).delete()[0]
            if total > PRUNE_BATCH:
                self.stderr.write(f"deleted {deleted:,} of {total:,} audit events ({100 * deleted // total}%)")
        record_change("audit.pruned", "audit log", {"older_than_days": older_than_days, "deleted": deleted})
        self.stdout.write(f"Deleted {deleted} audit event(s) older than {older_than_days} day(s); the usage "
                          "rollups are kept.")
