from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Flows and executions"

    def ready(self) -> None:
        # Imported once the app registry is ready (the collector reads the models).
        from executions.metrics import DatabaseCollector
        from flowplatform.metrics import register_database_collector

        register_database_collector(DatabaseCollector())
