"""``manage.py pruneevents [--days N]``: drop outbox events past their retention."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from flowplatform import tenancy
from realtime.services import PRUNE_BATCH_SIZE, prune_events


class Command(BaseCommand):
    help = (
        "Delete events older than FLOWPLATFORM_EVENT_RETENTION_DAYS (or --days), in batches."
        " Clients cannot replay past that point."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="keep this many days (default: settings.FLOWPLATFORM_EVENT_RETENTION_DAYS)",
        )
        parser.add_argument("--batch-size", type=int, default=PRUNE_BATCH_SIZE)

    def handle(self, *args, days: int | None, batch_size: int, **options) -> None:
        if days is None:
            days = settings.FLOWPLATFORM_EVENT_RETENTION_DAYS
        if days < 0:
            raise CommandError("--days must be zero or more.")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive.")
        cutoff = timezone.now() - timedelta(days=days)
        tenancy.bypass_process()  # row-level security: prunes every organization's events
        deleted = prune_events(older_than=cutoff, batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} event(s) older than {days} day(s).")
