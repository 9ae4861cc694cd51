from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time events"

    def ready(self) -> None:
        from realtime.logging import install_token_redaction

        install_token_redaction()
