"""Admin changelist pages that never count a whole table.

Django's changelist reads `paginator.count` on every page view; the default paginator answers it with a
COUNT(*) of the filtered rows, which at millions of audit rows costs more than the page itself. This
paginator counts at most the rows up to a few pages past the one asked for (a COUNT over a LIMITed
subquery, which reads that many index entries and stops). Beyond that the total is "more than N", or,
for the unfiltered table, the database's cheap estimate of its size; paging on extends the count.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min
from django.utils.functional import cached_property

PAGES_AHEAD = 10  # pages counted past the one shown: the changelist's links reach that far


class Counted:
    EXACT = "exact"
    ESTIMATE = "estimate"  # the unfiltered table, from the database's estimate of its size
    AT_LEAST = "at least"  # rows matched beyond the counted ones: the total is larger


class BoundedCountPaginator(Paginator):
    """A Paginator whose `count` costs at most (page + PAGES_AHEAD) pages of index entries.

    `dense_ids`: the table's ids have no gaps to speak of (rows are only inserted, and old ones
    deleted), so MAX(id) - MIN(id) + 1 is its size; not so for a table written by upserts, whose every
    conflict uses up an id on SQLite and on PostgreSQL alike."""

    dense_ids = False

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, *, page: int = 1):
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        self.page_shown = max(page, 1)
        self.counted = Counted.EXACT

    @cached_property
    def count(self) -> int:
        """The rows' number: exact when few, else a lower bound or (unfiltered) an estimate."""
        limit = (self.page_shown + PAGES_AHEAD) * self.per_page + 1
        counted = self.object_list.values("pk").order_by()[:limit].count()
        if counted < limit:
            return counted
        if not self.object_list.query.where:
            estimate = table_size_estimate(self.object_list.model, dense_ids=self.dense_ids)
            if estimate is not None:
                self.counted = Counted.ESTIMATE
                return max(counted, estimate)
        self.counted = Counted.AT_LEAST
        return counted

    @property
    def shown_count(self) -> str:
        """The count as a page shows it: '42', 'about 2,000,000' or 'more than 1,100'."""
        count = self.count
        if self.counted == Counted.ESTIMATE:
            return f"about {count:,}"
        if self.counted == Counted.AT_LEAST:
            return f"more than {count - 1:,}"
        return f"{count:,}"


class DenseIdsPaginator(BoundedCountPaginator):
    dense_ids = True


def table_size_estimate(model, *, dense_ids: bool) -> int | None:
    """A model's row count without counting: the span of its ids where they are dense (two lookups in
    the primary key's index), else PostgreSQL's planner estimate (pg_class.reltuples, kept current by
    autovacuum); None when neither is known."""
    if dense_ids:
        ids = model.objects.aggregate(low=Min("pk"), high=Max("pk"))
        return 0 if ids["high"] is None else ids["high"] - ids["low"] + 1
    connection = connections[model.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
            row = cursor.fetchone()
        if row and row[0] >= 0:  # -1: never vacuumed nor analysed
            return int(row[0])
    return None
