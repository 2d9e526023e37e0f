from __future__ import annotations

from django.contrib import admin, messages

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
    readonly_fields = ["has_value", "created_at", "updated_at"]

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
        return ", ".join(obj.llms.values_list("name", flat=True)) or "—"

    @admin.action(description="Check that the selected secrets resolve")
    def check_resolves(self, request, queryset) -> None:
        for secret in queryset:
            try:
                resolve(secret)  # the value is dropped at once: only ok or the cause is shown
            except SecretUnavailable as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"secret '{secret.name}': ok", messages.SUCCESS)

