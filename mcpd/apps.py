from django.apps import AppConfig


class McpdConfig(AppConfig):
    name = "mcpd"
    verbose_name = "API access"
    default_auto_field = "django.db.models.BigAutoField"
