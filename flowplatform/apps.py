from django.apps import AppConfig


class FlowplatformConfig(AppConfig):
    name = "flowplatform"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        # Imported once the apps are ready (Django's rule for AppConfig modules); importing
        # the schema extensions registers them with drf-spectacular.
        from flowplatform import keycache, schema_extensions  # noqa: F401

        keycache.connect_signals()
