"""``manage.py setupdbrole``: create and grant the application's PostgreSQL role."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

from flowplatform import tenancy
from flowplatform.dbrole import RoleSetupError, quote, setup_app_role


class Command(BaseCommand):
    help = (
        "Create (when missing) the role DATABASE_URL names, not superuser, not BYPASSRLS, "
        "owning nothing, and grant it data access to the database (created when missing). "
        "Runs as the owning role of MIGRATION_DATABASE_URL; idempotent; prints what it did."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-configured",
            action="store_true",
            help="do nothing, silently, unless MIGRATION_DATABASE_URL is set (for scripts)",
        )

    def handle(self, *args: Any, if_configured: bool = False, **options: Any) -> None:
        if not tenancy.owner_configured():
            if not if_configured:
                raise CommandError(
                    "Set MIGRATION_DATABASE_URL (the role owning the tables) and point "
                    "DATABASE_URL at the application's role, on PostgreSQL."
                )
            return
        if not tenancy.same_database(DEFAULT_DB_ALIAS, tenancy.OWNER_ALIAS):
            raise CommandError("DATABASE_URL and MIGRATION_DATABASE_URL must name one database.")
        app = connections[DEFAULT_DB_ALIAS].settings_dict
        owner = connections[tenancy.OWNER_ALIAS]
        lines = self._ensure_database(owner)
        try:
            with owner.cursor() as cursor:
                lines += setup_app_role(
                    cursor,
                    role=app["USER"],
                    password=app.get("PASSWORD") or None,
                    database=owner.settings_dict["NAME"],
                )
        except RoleSetupError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"]:
            for line in lines:
                self.stdout.write(line)

    def _ensure_database(self, owner: Any) -> list[str]:
        name = owner.settings_dict["NAME"]
        try:
            owner.ensure_connection()
            return []
        except OperationalError as exc:
            if "does not exist" not in str(exc):
                raise
        with owner._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {quote(name)}")
        return [f"database {name}: created"]
