"""``manage.py flowworker``: the HTTP worker, with its allow-list read from settings.

Only a wrapper: it parses flags, reads ``FLOWPLATFORM_PYTHON_CALLABLES`` and runs the same
``Worker`` as ``python -m executions.worker``.  The worker itself never touches the ORM,
so this command needs no database and skips the system checks.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from executions.worker.cli import UsageError, add_worker_arguments, run_from_args


class Command(BaseCommand):
    help = "Run a flowplatform worker: claim task executions over HTTP and run them."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_worker_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        callables = list(getattr(settings, "FLOWPLATFORM_PYTHON_CALLABLES", []) or [])
        namespace = argparse.Namespace(**options)
        try:
            code = run_from_args(namespace, extra_python_callables=callables)
        except UsageError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if code:
            raise CommandError("the worker stopped on an error", returncode=code)
