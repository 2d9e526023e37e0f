from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "secrets_app"
    label = "secrets_app"
    verbose_name = "Secrets"
    default_auto_field = "django.db.models.BigAutoField"
