"""Plain-function renderers shared by the API and the event outbox (no serializer overhead)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix and microseconds (exact enough to round-trip
    as an optimistic-lock token)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def uid(value: UUID | None) -> str | None:
    return None if value is None else str(value)
