"""The engine's hottest reads, written once as SQL.

Every worker report locks its flow execution, looks up the reported execution and loads the
latest executions of the tasks around it; every claim picks and updates queued executions.
Building those ORM queries cost more CPU than running them (bench/README.md, "Hot paths"),
so they are written here from the models' metadata: the same columns, and values passed
through the same backend and field converters as the ORM's (looked up once per process).
Instances come from ``Model.from_db``, exactly as a queryset builds them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.db import DatabaseError, connection
from django.db.models import Field, Model
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)


@functools.cache
def _layout(model: type[Model]) -> tuple[str, list[Field], list[list[Any]], list[str]]:
    fields = list(model._meta.concrete_fields)
    columns = ", ".join(f't."{field.column}"' for field in fields)
    converters = [_converters(model, field) for field in fields]
    return columns, fields, converters, [field.attname for field in fields]


def _converters(model: type[Model], field: Field) -> list[tuple[Any, Any]]:
    """What the ORM applies to a raw value of ``field``, with the expression it passes: the
    backend's converters, then the field's. A foreign key's column is typed as the key it
    refers to (on SQLite a UUID's text becomes a UUID), as in a queryset."""
    col = field.get_col(model._meta.db_table)
    found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
    return [(convert, col) for convert in found]


def columns(model: type[Model]) -> str:
    """The model's concrete columns as ``t."column", …`` (the table aliased ``t``)."""
    return _layout(model)[0]


def table(model: type[Model]) -> str:
    return f'"{model._meta.db_table}"'


def instances(model: type[M], rows: Iterable[Sequence[Any]]) -> list[M]:
    """Model instances from rows of ``columns(model)``, as a queryset would build them."""
    _, fields, converters, attnames = _layout(model)
    built = []
    for row in rows:
        values = list(row)
        for index, value in enumerate(values):
            if value is not None:
                for convert, col in converters[index]:
                    value = convert(value, col, connection)
                values[index] = value
        built.append(model.from_db(connection.alias, attnames, values))
    return built


def column(model: type[Model], name: str) -> str:
    return f'"{model._meta.get_field(name).column}"'


@functools.cache
def _value_layout(model: type[Model], names: tuple[str, ...]) -> list[list[tuple[Any, Any]]]:
    return [_converters(model, model._meta.get_field(name)) for name in names]


def values(model: type[Model], names: tuple[str, ...], row: Sequence[Any]) -> dict[str, Any]:
    """A row of the ``names`` columns as ``.values(*names)`` would give it."""
    data = {}
    for name, value, converters in zip(names, row, _value_layout(model, names), strict=True):
        if value is not None:
            for convert, col in converters:
                value = convert(value, col, connection)
        data[name] = value
    return data


def select(model: type[M], sql: str, params: Sequence[Any], *, distinct_on: str = "") -> list[M]:
    """Run ``SELECT [DISTINCT ON (…)] <columns> FROM <table> t`` + ``sql``; the instances."""
    distinct = f"DISTINCT ON ({distinct_on}) " if distinct_on else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {distinct}{columns(model)} FROM {table(model)} t {sql}", params)
        return instances(model, cursor.fetchall())


def db_value(model: type[Model], name: str, value: Any) -> Any:
    """``value`` of field ``name`` as the database takes it (a UUID's text on SQLite)."""
    field = model._meta.get_field(name)
    return field.get_db_prep_value(field.to_python(value), connection)


def placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


def lock_clause(*, no_key: bool = False, skip_locked: bool = False, of: str = "") -> str:
    """``FOR [NO KEY] UPDATE [OF t] [SKIP LOCKED]`` where the database has row locks (none on
    SQLite, whose one writer serialises transactions)."""
    features = connection.features
    if not features.has_select_for_update:
        return ""
    if connection.get_autocommit():
        raise TransactionManagementError(
            "select_for_update cannot be used outside of a transaction."
        )
    clause = (
        " FOR NO KEY UPDATE"
        if no_key and features.has_select_for_no_key_update
        else (" FOR UPDATE")
    )
    if of and features.has_select_for_update_of:
        clause += f" OF {of}"
    if skip_locked and features.has_select_for_update_skip_locked:
        clause += " SKIP LOCKED"
    return clause


def insert(objs: Sequence[M]) -> list[M]:
    """``bulk_create`` of new instances of one model, primary keys set by the caller: one
    multi-row INSERT, values prepared as the ORM prepares them (``pre_save``, then
    ``get_db_prep_save``)."""
    if not objs:
        return []
    model = type(objs[0])
    fields = _layout(model)[1]
    sql_columns = ", ".join(f'"{field.column}"' for field in fields)
    row = f"({placeholders(len(fields))})"
    # As many rows per statement as the database takes parameters (SQLite: few).
    size = max(1, connection.ops.bulk_batch_size(fields, objs))
    with connection.cursor() as cursor:
        for start in range(0, len(objs), size):
            batch = objs[start : start + size]
            params: list[Any] = []
            for obj in batch:
                params += [
                    field.get_db_prep_save(field.pre_save(obj, True), connection)
                    for field in fields
                ]
            cursor.execute(
                f"INSERT INTO {table(model)} ({sql_columns})"
                f" VALUES {', '.join([row] * len(batch))}",
                params,
            )
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return list(objs)


def update(obj: Model, names: Iterable[str], *, expect: dict[str, Any] | None = None) -> bool:
    """``obj.save(update_fields=names)`` as one UPDATE (``DatabaseError`` when the row is
    gone, as the ORM raises). With ``expect`` (``{field: value}``) the row is updated only if
    it still holds those values: returns whether it did."""
    meta = obj._meta
    fields = [meta.get_field(name) for name in sorted(names)]
    assignments = ", ".join(f'"{field.column}" = %s' for field in fields)
    params = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in fields]
    where = f'"{meta.pk.column}" = %s'
    params.append(meta.pk.get_db_prep_value(obj.pk, connection))
    for name, value in (expect or {}).items():
        field = meta.get_field(name)
        where += f' AND "{field.column}" = %s'
        params.append(field.get_db_prep_value(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table(type(obj))} SET {assignments} WHERE {where}", params)
        updated = cursor.rowcount == 1
    if not updated and expect is None:
        raise DatabaseError("Save with update_fields did not affect any rows.")
    return updated
