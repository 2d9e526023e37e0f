from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdmin

from audit.recorder import Caller
from llms import overview
from llms.models import Deployment, Fallback, Llm, redact_userinfo
from llms.permissions import can_run, is_in_use
from mcpd.middleware import client_ip


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
    # guardian's change form (its "Object permissions" link) with the Llm's overview below the form.
    change_form_template = "admin/llms/llm/change_form.html"
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
        return self._back_to_llm(request, object_pk, super().obj_perms_manage_user_view(request, object_pk, user_id))

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._require_grant(request)
        return self._back_to_llm(request, object_pk, super().obj_perms_manage_group_view(request, object_pk, group_id))

    def _back_to_llm(self, request, object_pk, response):
        """A revoke posted from the Llm's page (next=llm) returns there once guardian has saved it; the
        grant, the checks and the audit are guardian's view's, unchanged."""
        if request.method == "POST" and request.POST.get("next") == "llm" and response.status_code == 302:
            return HttpResponseRedirect(reverse("admin:llms_llm_change", args=[object_pk]) + "#llm-access")
        return response

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

    # --- the Llm's page: the overview below its form, and its Test button

    def get_urls(self):
        test = path("<path:object_id>/test/", self.admin_site.admin_view(self.test_view), name="llms_llm_test")
        return [test, *super().get_urls()]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add:  # change_view has checked that the user may view it
            context["overview"] = self._overview(request, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _overview(self, request, llm: Llm) -> dict:
        """Each panel shows what the user may already see elsewhere in the admin: who may run it to those who
        may grant it (guardian's pages), the limits to who may view limits, the calls to who may view audit."""
        user = request.user
        rows, cooling_problem = overview.deployments(llm)
        may_grant = self._may_grant(request)
        may_view_limits = user.has_perm("limits.view_limit") or user.has_perm("limits.change_limit")
        may_view_calls = user.has_perm("audit.view_auditevent")
        return {
            "deployments": rows, "cooling_problem": cooling_problem,
            "may_grant": may_grant, "is_superuser": user.is_superuser,
            "holders": overview.run_holders(llm) if may_grant else [],
            "superusers": overview.superusers() if may_grant else 0,
            "may_view_limits": may_view_limits, "may_add_limits": user.has_perm("limits.add_limit"),
            "limits": overview.limits_on(llm) if may_view_limits else [],
            "may_view_calls": may_view_calls, "calls": overview.recent_calls(llm) if may_view_calls else [],
            "may_test": self._may_test(request, llm),
            "currency": settings.CURRENCY,
            "test_prompt": overview.TEST_PROMPT, "test_prompt_max": overview.TEST_PROMPT_MAX,
            "test": request.session.pop(self._test_key(llm), None),
        }

    # The Test button spends: it needs run on the Llm, as a call through the API does (superusers pass,
    # change_llm is not enough), besides the view of the page it is on.
    def _may_test(self, request, llm: Llm) -> bool:
        return self.has_view_or_change_permission(request, llm) and can_run(request.user, llm)

    @staticmethod
    def _test_key(llm: Llm) -> str:
        return f"mcpd-llm-test-{llm.pk}"

    def test_view(self, request, object_id):
        """POST: one call of the prompt through the service as the user; its answer or its error is shown
        on the Llm's page (kept in the session until then)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        llm = self.get_object(request, unquote(object_id))
        if llm is None:
            raise Http404("No such LLM.")
        if not self._may_test(request, llm):
            raise PermissionDenied("Testing an LLM needs run on it.")
        prompt = request.POST.get("prompt", "").strip()[:overview.TEST_PROMPT_MAX] or overview.TEST_PROMPT
        if llm.enabled:
            caller = Caller(user=request.user, request_id=request.request_id, client_ip=client_ip(request))
            result = overview.trial(caller, llm, prompt)
        else:  # as the API answers: a disabled Llm is not called
            result = {"llm": llm.name, "prompt": prompt, "ok": False, "status": 404, "type": "not_found_error",
                      "code": None, "message": f"The Llm '{llm.name}' is disabled.", "request_id": ""}
        request.session[self._test_key(llm)] = result
        return HttpResponseRedirect(reverse("admin:llms_llm_change", args=[llm.pk]) + "#llm-test")
