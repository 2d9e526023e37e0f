"""Read-only admin pages for audit rows and usage rollups, kept fast at millions of rows: no page
counts a whole table (audit/paging.py), every filter and search is served by an index (audit/models.py)
and no filter lists its choices by reading every row."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.contrib.auth import get_user_model
from django.core.paginator import InvalidPage
from django.db.models import OuterRef, Q, Subquery

from audit.models import INFERENCE, AuditEvent, UsageDay
from audit.paging import BoundedCountPaginator, Counted, DenseIdsPaginator
from llms.models import Llm, Provider
from mcpd.models import ApiToken


class SortableByChangeList(ChangeList):
    """Orders only by the columns in sortable_by: Django hides the other headers' links but still obeys
    an ?o= naming them (an ORDER BY on an unindexed column sorts every row)."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)

    def get_results(self, request):
        super().get_results(request)
        if getattr(self.paginator, "counted", Counted.EXACT) != Counted.EXACT:
            # "Show all" lists every row, without a LIMIT: only when they were counted and are few.
            self.can_show_all = False
            try:
                self.result_list = self.paginator.page(self.page_num).object_list
            except InvalidPage:
                raise IncorrectLookupParameters from None


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by mcpd alone, listed without counting them all."""

    paginator = BoundedCountPaginator
    show_full_result_count = False  # the "N total" beside a search is a COUNT(*) of the whole table
    show_facets = admin.ShowFacets.NEVER  # facets count every filter's choices over the matching rows

    def get_changelist(self, request, **kwargs):
        return SortableByChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page = 1
        return self.paginator(queryset, per_page, orphans, allow_empty_first_page, page=page)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LlmFilter(admin.SimpleListFilter):
    """The catalogue's Llms (a DISTINCT over the rows would read every one of them)."""

    title = "LLM"
    parameter_name = "llm_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in Llm.objects.values_list("name", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(llm_name=self.value()) if self.value() is not None else queryset


class KindFilter(admin.SimpleListFilter):
    """Inference calls, changes, or one kind of change. The kinds listed are read from the change rows
    alone, two ranges of the kind index either side of the inference calls' kind."""

    title = "kind"
    parameter_name = "kind"
    CHANGES = "changes"

    def lookups(self, request, model_admin):
        kinds = (AuditEvent.objects.filter(changes()).order_by("kind").values_list("kind", flat=True).distinct())
        return [(INFERENCE, "inference calls"), (self.CHANGES, "all changes"), *((kind, kind) for kind in kinds)]

    def queryset(self, request, queryset):
        if self.value() == self.CHANGES:
            return queryset.filter(changes())
        return queryset.filter(kind=self.value()) if self.value() is not None else queryset


def changes() -> Q:
    """Every kind but the inference calls', as two ranges (an index serves `<>` only by reading it all)."""
    return Q(kind__lt=INFERENCE) | Q(kind__gt=INFERENCE)


class ProviderFilter(admin.SimpleListFilter):
    """The providers mcpd knows (the field has no choices, and a DISTINCT would read every row)."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return Provider.choices

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() is not None else queryset


class StatusFilter(admin.SimpleListFilter):
    """The HTTP status by class (a DISTINCT of the statuses would read every row)."""

    title = "status"
    parameter_name = "status_class"

    def lookups(self, request, model_admin):
        return [("2", "2xx"), ("4", "4xx"), ("5", "5xx")]

    def queryset(self, request, queryset):
        if self.value() not in {"2", "4", "5"}:
            return queryset
        low = int(self.value()) * 100
        return queryset.filter(status__gte=low, status__lt=low + 100)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Newest first, one index range per page. No date drill-down: Django's date_hierarchy groups
    every row by year, month and day on each page view; the created_at filter takes its place."""

    paginator = DenseIdsPaginator  # rows are only inserted (and the oldest pruned): MAX(id) - MIN(id) + 1
    list_display = ["created_at", "kind", "actor", "llm_name", "object_repr", "status", "outcome",
                    "duration_ms", "prompt_tokens", "completion_tokens", "cost"]
    list_filter = ["created_at", "outcome", KindFilter, LlmFilter, ProviderFilter, StatusFilter, "streaming"]
    # Exact matches only, each answered by an index; a substring or prefix search reads every row.
    search_fields = ["request_id__exact", "token_sha__exact", "actor__exact", "llm_name__exact"]
    search_help_text = "An exact request id, token SHA-256, username (or command such as \"manage.py llm test\") " \
                       "or LLM name."
    sortable_by = ["created_at"]  # the other columns have no index: sorting by one would sort every row


@admin.register(UsageDay)
class UsageDayAdmin(ReadOnlyAdmin):
    """Usage per day, Llm, user and token, from the rollups (kept when audit rows are pruned)."""

    list_display = ["day", "llm_name", "user", "token", "calls", "errors", "prompt_tokens", "completion_tokens",
                    "cache_read_tokens", "cache_write_tokens", "cost", "unpriced_calls"]
    list_filter = ["day", LlmFilter]
    ordering = ["-day", "llm_name", "user_id", "token_sha"]  # the rollup key: a total order

    def get_queryset(self, request):
        users = get_user_model().objects.filter(pk=OuterRef("user_id"))
        tokens = ApiToken.objects.filter(sha256=OuterRef("token_sha"))
        # Subqueries in the SELECT run for the page's rows only; the paginator's count selects ids alone.
        return super().get_queryset(request).annotate(username=Subquery(users.values("username")[:1]),
                                                      token_prefix=Subquery(tokens.values("prefix")[:1]))

    @admin.display(description="user")
    def user(self, row: UsageDay) -> str:
        return row.username or (f"#{row.user_id}" if row.user_id else "-")

    @admin.display(description="token")
    def token(self, row: UsageDay) -> str:
        return row.token_prefix or (f"sha {row.token_sha[:12]}" if row.token_sha else "-")
