from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from mcpd.models import ApiToken


class ApiTokenForm(forms.ModelForm):
    """A token's expiry may only be shortened (set where there was none, or moved earlier), unless
    `may_extend` (superusers): an owner must not outlive an expiry a superuser set."""

    may_extend = False

    def clean_expires_at(self):
        new = self.cleaned_data.get("expires_at")
        if self.instance.pk is None:
            return new
        old = self.instance.loaded("expires_at")
        if old is not None and new == old.replace(microsecond=0):
            return old  # the form shows seconds only: an untouched expiry keeps its microseconds
        if not self.may_extend and old is not None and (new is None or new > old):
            raise forms.ValidationError(
                "You may only shorten a token's expiry (or set one); ask a superuser to extend it.")
        return new


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens: the plaintext is shown on the page right after creation, and never again."""

    list_display = ["prefix_shown", "name", "user", "created_at", "last_used_at", "expires_at", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "prefix", "user__username"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]
    form = ApiTokenForm

    # A token acts as its user: only a superuser may issue or see tokens of other users; anyone else
    # with the token permissions manages their own (otherwise add_apitoken would reach superuser).
    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("user")
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def get_autocomplete_fields(self, request):
        return self.autocomplete_fields if request.user.is_superuser else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["prefix_shown", "user", "name", "created_at", "last_used_at", "expires_at", "revoked"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = ["prefix_shown", "user", "created_at", "last_used_at"]
        # Revocation is one-way (ApiToken.save refuses the way back): issue a new token instead.
        return [*readonly, "revoked"] if obj.loaded("revoked", obj.revoked) else readonly

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.may_extend = request.user.is_superuser  # a class of its own, made for this request
        return form

    @admin.display(description="Token")
    def prefix_shown(self, obj: ApiToken) -> str:
        return f"{obj.prefix}…"

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        if not request.user.is_superuser and obj.user_id != request.user.pk:
            raise PermissionDenied("Only a superuser may issue tokens for other users.")
        token, plaintext = ApiToken.objects.issue(obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.prefix, obj.sha256 = token.pk, token.prefix, token.sha256
        request._issued_plaintext = plaintext  # rendered once by response_add, stored nowhere

    def response_add(self, request, obj, post_url_continue=None):
        return TemplateResponse(request, "admin/mcpd/apitoken/issued.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "token": obj, "plaintext": request._issued_plaintext,
            "title": "API token issued",
        })

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        count = 0
        for token in queryset.filter(revoked=False):
            token.revoked = True
            token.save(update_fields=["revoked"])
            count += 1
        self.message_user(request, f"Revoked {count} token(s).")
