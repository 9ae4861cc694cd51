from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project's wiring, as an app: its management commands (``serve``,
    ``bootstrapdemo``) and the admin pages that span the other apps."""

    name = "config"
    verbose_name = "flowplatform"
