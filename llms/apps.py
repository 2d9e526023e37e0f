from django.apps import AppConfig


class LlmsConfig(AppConfig):
    name = "llms"
    verbose_name = "LLM catalogue"
    default_auto_field = "django.db.models.BigAutoField"
