from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flowplatform.exceptions import FlowplatformError
from flowplatform.services import create_api_key, get_organization


class Command(BaseCommand):
    help = "Create an API key and print only the key (it is shown once)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--organization", required=True, help="organization id or name")
        parser.add_argument("--kind", choices=["user", "service"], required=True)
        parser.add_argument("--user", help="username (user keys); created if missing")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument("--read-only", action="store_true")

    def handle(self, *args, **options) -> None:
        try:
            org = get_organization(id_or_name=options["organization"])
            user = None
            if options["kind"] == "user":
                if not options["user"]:
                    raise CommandError("--user is required for a user key.")
                user, _ = get_user_model().objects.get_or_create(username=options["user"])
            _, raw = create_api_key(
                organization=org,
                kind=options["kind"],
                user=user,
                name=options["name"],
                read_only=options["read_only"],
            )
        except FlowplatformError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw)
