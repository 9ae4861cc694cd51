from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from flowplatform.models import Organization
from flowplatform.services import create_organization


class Command(BaseCommand):
    help = "Create an organization and print its id."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("name")
        parser.add_argument("--max-concurrent-executions", type=int, default=None)

    def handle(self, *args, name: str, max_concurrent_executions: int | None, **options) -> None:
        if Organization.objects.filter(name=name).exists():
            raise CommandError(f"An organization named {name!r} already exists.")
        org = create_organization(name=name, max_concurrent_executions=max_concurrent_executions)
        self.stdout.write(str(org.id))
