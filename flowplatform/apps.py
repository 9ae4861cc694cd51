from django.apps import AppConfig


class FlowplatformConfig(AppConfig):
    name = "flowplatform"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from flowplatform import keycache, schema_extensions  # noqa: F401 - registers extensions

        keycache.connect_signals()
