from django.apps import AppConfig


class McpdConfig(AppConfig):
    name = "mcpd"
    verbose_name = "API access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mcpd import schema  # noqa: F401  (registers the bearer scheme with drf-spectacular)
