from django.apps import AppConfig


class McpdConfig(AppConfig):
    name = "mcpd"
    verbose_name = "API access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mcpd import memo, schema  # noqa: F401  (schema registers the bearer scheme with drf-spectacular)

        memo.connect_invalidation()
