from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from secrets_app.backends import SecretUnavailable, resolve
from secrets_app.forms import SecretForm
from secrets_app.models import Secret


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "backend", "ref", "has_value", "used_by", "updated_at"]
    list_filter = ["backend"]
    search_fields = ["name", "ref", "description"]
    actions = ["check_resolves"]
    readonly_fields = ["has_value", "where_used", "created_at", "updated_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        superuser = request.user.is_superuser

        class BoundSecretForm(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, may_reference_server=superuser, **inner)

        return BoundSecretForm

    @admin.display(boolean=True, description="Value set")
    def has_value(self, obj: Secret) -> bool:
        return obj.has_value if obj.backend == "db" else True

    @admin.display(description="Used by")
    def used_by(self, obj: Secret) -> str:
        return ", ".join(f"{name}{f' (deployment {pk})' if pk else ''}" for _, name, pk in _uses(obj)) or "—"

    @admin.display(description="Used by")
    def where_used(self, obj: Secret) -> str:
        """The Llms and deployments that send this secret as their key, each linked to its Llm's page."""
        uses = _uses(obj) if obj.pk else []
        if not uses:
            return "Nothing: no LLM or deployment sends it."
        items = ((reverse("admin:llms_llm_change", args=[llm_pk]), name, f", deployment {pk}" if pk else "")
                 for llm_pk, name, pk in uses)
        return format_html('<ul class="secret-uses">{}</ul>',
                           format_html_join("", '<li>LLM <a href="{}">{}</a>{}</li>', items))

    @admin.action(description="Check that the selected secrets resolve")
    def check_resolves(self, request, queryset) -> None:
        for secret in queryset:
            try:
                resolve(secret)  # the value is dropped at once: only ok or the cause is shown
            except SecretUnavailable as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"secret '{secret.name}': ok", messages.SUCCESS)


def _uses(secret: Secret) -> list[tuple[int, str, int | None]]:
    """(Llm id, its name, None) for each Llm whose own key it is, then (Llm id, name, deployment id) for each
    deployment whose key it is."""
    return [(pk, name, None) for pk, name in secret.llms.order_by("name").values_list("pk", "name")] + list(
        secret.deployments.order_by("llm__name", "id").values_list("llm_id", "llm__name", "id"))
