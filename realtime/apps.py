from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time events"

    def ready(self) -> None:
        # Imported once the apps are ready (Django's rule for AppConfig modules).
        from realtime.logging import install_token_redaction

        install_token_redaction()
