from django.apps import AppConfig


class DocsaiConfig(AppConfig):
    name = "docsai"
    default_auto_field = "django.db.models.BigAutoField"
