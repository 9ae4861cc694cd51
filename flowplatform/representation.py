"""One renderer per resource: a table of fields from which the three forms of a resource on
the wire are derived, so adding a field is one line.

- ``Renderer.data(obj)``: the dict the API returns and events carry (ids as text, times in
  ISO 8601 UTC: ``iso``);
- ``Renderer.data_sql(alias)``: a PostgreSQL expression building the same JSON, for lists
  the database renders without loading rows into Python (``iso_sql`` is ``iso``'s form);
- ``Renderer.serializer()``: the serializer that documents it in the OpenAPI schema.

``flowplatform/tests/test_representation.py`` holds the forms equal on stored rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from rest_framework import serializers

UUID_KIND, TIME_KIND, JSON_KIND, VALUE_KIND = "uuid", "time", "json", "value"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix and microseconds (exact enough to round-trip
    as an optimistic-lock token); a whole second has no fraction."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_sql(column: str) -> str:
    """PostgreSQL: a ``timestamptz`` column as ``iso`` renders it (text; NULL stays NULL)."""
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " '.000000Z', 'Z')"
    )


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


@dataclass(frozen=True)
class Out:
    """One field of a rendered resource: its key, how it is written (``uuid``: text;
    ``time``: ``iso``; ``json`` or ``value``: as stored) and the serializer field that
    documents it. ``attr`` is the model attribute when it is not the key."""

    key: str
    kind: str
    schema: Callable[[], serializers.Field]
    attr: str = ""

    @property
    def source(self) -> str:
        return self.attr or self.key


_WRITE: dict[str, Callable[[Any], Any]] = {
    UUID_KIND: uid,
    TIME_KIND: iso,
    JSON_KIND: lambda value: value,
    VALUE_KIND: lambda value: value,
}


@dataclass(frozen=True)
class Renderer:
    name: str
    fields: Sequence[Out]
    _serializers: dict[str, type[serializers.Serializer]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def data(self, obj: Any) -> dict[str, Any]:
        return {f.key: _WRITE[f.kind](getattr(obj, f.source)) for f in self.fields}

    def data_sql(self, alias: str, *, ordered: bool = False) -> str:
        """A ``jsonb`` expression equal to ``data`` of the row ``alias``; with ``ordered``
        a ``json`` one whose text keeps the keys in the API's order."""
        parts = []
        for f in self.fields:
            column = f"{alias}.{f.source}"
            if f.kind == UUID_KIND:
                column = f"{column}::text"
            elif f.kind == TIME_KIND:
                column = iso_sql(column)
            parts.append(f"'{f.key}', {column}")
        function = "json_build_object" if ordered else "jsonb_build_object"
        return f"{function}({', '.join(parts)})"

    def serializer(
        self, name: str | None = None, **extra: serializers.Field
    ) -> type[serializers.Serializer]:
        """The serializer documenting this resource (named ``name``, default the
        renderer's), with ``extra`` fields after the table's."""
        name = name or self.name
        if name not in self._serializers:
            attrs = {f.key: f.schema() for f in self.fields}
            self._serializers[name] = type(name, (serializers.Serializer,), {**attrs, **extra})
        return self._serializers[name]
