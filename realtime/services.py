"""Outbox maintenance."""

from __future__ import annotations

from datetime import datetime

from realtime.models import Event

PRUNE_BATCH_SIZE = 5000


def prune_events(*, older_than: datetime, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Delete events created before ``older_than``; returns how many.

    Deletes in batches of ``batch_size`` ids, each in its own short transaction (autocommit),
    so a large backlog never holds locks for long nor builds one huge delete.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    deleted = 0
    while True:
        ids = list(
            Event.objects.filter(created_at__lt=older_than)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        count, _ = Event.objects.filter(id__in=ids).delete()
        deleted += count
