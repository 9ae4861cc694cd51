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


def as_uuid(value: object) -> UUID | None:
    """``value`` (a UUID or its text) as a UUID; None if it is not one."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None


# PostgreSQL twins of the renderers above, for statements that build event data in the
# database (large batches: no row is loaded into Python). Tests compare both renderings.


def iso_sql(column: str) -> str:
    """A ``timestamptz`` column as ``iso`` renders it (text; NULL stays NULL)."""
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " '.000000Z', 'Z')"
    )


def uid_sql(column: str) -> str:
    """A ``uuid`` column as ``uid`` renders it."""
    return f"{column}::text"


def json_object_sql(fields: dict[str, str], *, ordered: bool = False) -> str:
    """A ``jsonb`` object of ``{key: SQL expression}`` (keys are trusted identifiers); with
    ``ordered``, a ``json`` object whose text keeps the keys in the given order, as the API's
    own rendering does (for text sent to clients as it is)."""
    function = "json_build_object" if ordered else "jsonb_build_object"
    return f"{function}(" + ", ".join(f"'{k}', {v}" for k, v in fields.items()) + ")"
