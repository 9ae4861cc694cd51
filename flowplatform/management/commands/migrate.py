"""``manage.py migrate`` as the owning role when ``MIGRATION_DATABASE_URL`` is set.

The application's role (``DATABASE_URL``) may not create or alter tables; migrations of the
default database run through the ``owner`` alias, which points at the same database.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands.migrate import Command as MigrateCommand

from flowplatform import tenancy


class Command(MigrateCommand):
    help = MigrateCommand.help + " Runs as MIGRATION_DATABASE_URL's role when that is set."

    def handle(self, *args: Any, **options: Any) -> Any:
        options["database"] = tenancy.migration_alias(options["database"])
        return super().handle(*args, **options)
