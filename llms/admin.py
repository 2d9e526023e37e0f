from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdmin

from llms.models import Deployment, Fallback, Llm, redact_userinfo
from llms.permissions import is_in_use


class LlmForm(forms.ModelForm):
    """Shows a stored base URL's user:password@ as `***@`: saving then asks for it to be removed,
    rather than the credential being shown, or silently dropped."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.initial.get("base_url"):
            self.initial["base_url"] = redact_userinfo(self.initial["base_url"])


class _RunOnly:
    """The object-permission form of a non-superuser: run is the only choice. Guardian's
    save_obj_perms adds and removes only among the choices, so the other object permissions a
    superuser gave (change, delete, view) are kept, and none can be added."""

    def get_obj_perms_field_choices(self) -> list:
        return [choice for choice in super().get_obj_perms_field_choices() if choice[0] == "run_llm"]


class RunOnlyUserForm(_RunOnly, AdminUserObjectPermissionsForm):
    pass


class RunOnlyGroupForm(_RunOnly, AdminGroupObjectPermissionsForm):
    pass


class _SuperuserEdits:
    """Inlines that route calls (another server, another key, another Llm): superusers edit them; other
    staff who may view the Llm see them read-only."""

    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser or request.user.has_perm("llms.view_llm") or \
            request.user.has_perm("llms.change_llm")


class DeploymentForm(forms.ModelForm):
    """As LlmForm: a stored user:password@ shows as `***@`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.initial.get("base_url"):
            self.initial["base_url"] = redact_userinfo(self.initial["base_url"])


class DeploymentInline(_SuperuserEdits, admin.TabularInline):
    model = Deployment
    form = DeploymentForm
    fields = ["base_url", "api_key_secret", "model", "weight", "enabled"]
    autocomplete_fields = ["api_key_secret"]
    verbose_name = "further deployment"
    verbose_name_plural = "further deployments (the fields above are the first; calls are spread by weight)"


class FallbackInline(_SuperuserEdits, admin.TabularInline):
    model = Fallback
    fk_name = "llm"
    fields = ["to", "position"]
    verbose_name_plural = "fallbacks (tried in position order when every deployment fails a call)"


@admin.register(Llm)
class LlmAdmin(GuardedModelAdmin):
    form = LlmForm
    inlines = [DeploymentInline, FallbackInline]
    list_display = ["name", "provider", "model", "effective_base_url", "has_api_key", "enabled", "updated_at"]
    list_filter = ["provider", "enabled"]
    search_fields = ["name", "model", "description"]
    autocomplete_fields = ["api_key_secret"]
    readonly_fields = ["created_at", "updated_at"]
    fields = ["name", "provider", "model", "base_url", "api_key_secret", "weight", "max_attempts",
              "default_max_tokens", "context_window",
              "price_input", "price_output", "price_cache_read", "price_cache_write", "enabled",
              "description", "created_at", "updated_at"]

    # Where prompts and keys go is as sensitive as the key: an editor who could point a used Llm at a
    # server of theirs, attach another secret, or rename it and give its name to an Llm of theirs,
    # would receive the next calls. Only superusers choose an Llm's secret, or move (or delete) an
    # Llm in use (is_in_use: a key or a run grant). `model` is not routing: it picks the model at the
    # same provider, with the same key.
    ROUTING_FIELDS = ["name", "provider", "base_url", "api_key_secret"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if not request.user.is_superuser:
            if obj is not None and is_in_use(obj):
                # The base URL is shown as shown_base_url_field (get_fields): a read-only model
                # field would show a stored user:password@ as it is.
                readonly += [*self.ROUTING_FIELDS, "shown_base_url_field"]
            else:
                readonly += ["api_key_secret"]
        return readonly

    def get_fields(self, request, obj=None):
        if "shown_base_url_field" in self.get_readonly_fields(request, obj):
            return [("shown_base_url_field" if f == "base_url" else f) for f in self.fields]
        return self.fields

    def has_delete_permission(self, request, obj=None):
        # Deleting frees the name as renaming would. Per object, so the bulk action is refused too
        # (Django's delete_selected asks this of every selected row).
        if obj is not None and not request.user.is_superuser and is_in_use(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_autocomplete_fields(self, request):
        return self.autocomplete_fields if request.user.is_superuser else []

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, obj: Llm) -> bool:
        return obj.has_api_key

    @admin.display(description="Base URL")
    def effective_base_url(self, obj: Llm) -> str:
        return obj.shown_base_url or "—"

    @admin.display(description="Base URL")
    def shown_base_url_field(self, obj: Llm) -> str:
        return redact_userinfo(obj.base_url) or "—"

    # Granting run is spend: it needs its own permission, not `change_llm` (a catalogue editor
    # must not be able to grant themselves run from the "Object permissions" page). And it is
    # enough: `grant_run_llm` alone opens those pages, and lets its holder give or take run only.
    def _may_grant(self, request) -> bool:
        return request.user.is_active and (request.user.is_superuser or request.user.has_perm("llms.grant_run_llm"))

    def obj_perms_manage_view(self, request, object_pk):
        self._require_grant(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._require_grant(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._require_grant(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def _require_grant(self, request) -> None:
        if not self._may_grant(request):
            raise PermissionDenied("Granting run on an LLM needs the 'grant run' permission.")
        request._grant_checked = True  # guardian's own check, below, lets this request through

    def has_change_permission(self, request, obj=None):
        # Guardian's three views open with `has_change_permission(request, None)` and send whoever
        # fails it to the index. _require_grant has just checked what they need instead, so that one
        # call passes. It is consumed on first use: the rest of the page (the sidebar's model list,
        # the breadcrumbs) and every other view see the user's real `change`.
        if obj is None and request.__dict__.pop("_grant_checked", False):
            return True
        return super().has_change_permission(request, obj)

    def get_obj_perms_manage_user_form(self, request):
        return super().get_obj_perms_manage_user_form(request) if request.user.is_superuser else RunOnlyUserForm

    def get_obj_perms_manage_group_form(self, request):
        return super().get_obj_perms_manage_group_form(request) if request.user.is_superuser else RunOnlyGroupForm
