from __future__ import annotations

from django import forms

from secrets_app.models import Backend, Secret


class SecretForm(forms.ModelForm):
    """A Secret with a write-only value: never rendered back, required for a new db secret."""

    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="db backend only. Write-only: it is never shown again. Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["name", "backend", "ref", "description"]

    def clean(self):
        data = super().clean()
        value, backend = data.get("value", ""), data.get("backend")
        if backend == Backend.DB:
            if value.strip() == "" and value:
                self.add_error("value", "The value is only white space.")
            elif not value and not (self.instance.pk and self.instance.has_value):
                self.add_error("value", "A db secret needs a value.")
        elif value:
            self.add_error("value", f"A {backend} secret keeps no value in mcpd; set its ref instead.")
        return data

    def save(self, commit: bool = True) -> Secret:
        secret = super().save(commit=False)
        value = self.cleaned_data.get("value")
        if secret.backend == Backend.DB and value:
            secret.set_value(value)
        elif secret.backend != Backend.DB:
            secret.encrypted_value = ""
        if commit:
            secret.save()
        return secret
