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

    def __init__(self, *args, may_reference_server: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        # env, file and vault refs make mcpd read the server's environment, files or vault and send
        # what it finds upstream: only a superuser may point a secret there.
        self.may_reference_server = may_reference_server

    def clean(self):
        data = super().clean()
        value, backend = data.get("value", ""), data.get("backend")
        if not self.may_reference_server and (backend != Backend.DB or self.instance.backend != Backend.DB):
            self.add_error("backend", "Only a superuser may use or change env, file and vault secrets.")
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
