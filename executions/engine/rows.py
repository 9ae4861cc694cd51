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
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import DatabaseError, connection
from django.db.models import Field, Model
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)
# A statement to send: SQL, its parameters, and how many rows it must change (None: any).
Statement = tuple[str, list[Any], int | None]


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


def select(model: type[M], sql: str, params: Sequence[Any]) -> list[M]:
    """Run ``SELECT <columns> FROM <table> t`` + ``sql``; the instances."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(model)} FROM {table(model)} t {sql}", params)
        return instances(model, cursor.fetchall())


def db_value(model: type[Model], name: str, value: Any) -> Any:
    """``value`` of field ``name`` as the database takes it (a UUID's text on SQLite)."""
    field = model._meta.get_field(name)
    return field.get_db_prep_value(field.to_python(value), connection)


class Compiled:
    """A queryset's SQL compiled once, its values bound per call.

    ``build(**values)`` makes the queryset (the rule); it is compiled once with a marker for
    each value (for each element of a list value: ``sizes`` gives the lengths), and every
    parameter that is a marker becomes a slot. ``params(**values)`` fills the slots, each
    value prepared by the field it is compared with (``fields``: value → the model's field
    name), as the ORM's lookup prepares it. Compiling cost more than running the engine's
    small claims (bench/README.md, "Hot paths"); the statement is the queryset's own."""

    def __init__(
        self,
        model: type[Model],
        build: Any,
        fields: dict[str, str],
        sizes: dict[str, int] | None = None,
    ) -> None:
        sizes = sizes or {}
        self.model, self.fields = model, fields
        markers = {
            name: [_marker(model, field) for _ in range(sizes[name])]
            if name in sizes
            else _marker(model, field)
            for name, field in fields.items()
        }
        self.sql, params = build(**markers).query.sql_with_params()
        self.params = list(params)
        self.slots: list[tuple[int, str, int | None]] = []
        for name, marker in markers.items():
            for element, value in enumerate(marker) if name in sizes else [(None, marker)]:
                prepared = db_value(model, fields[name], value)
                found = [i for i, param in enumerate(self.params) if param == prepared]
                if len(found) != 1:
                    raise ValueError(f"{name!r} is not one parameter of the compiled query")
                self.slots.append((found[0], name, element))

    def params_for(self, **values: Any) -> list[Any]:
        params = list(self.params)
        for index, name, element in self.slots:
            value = values[name] if element is None else values[name][element]
            params[index] = db_value(self.model, self.fields[name], value)
        return params


def _marker(model: type[Model], name: str) -> Any:
    """A value of field ``name``'s type that no query holds by chance."""
    kind = model._meta.get_field(name).get_internal_type()
    if kind == "DateTimeField":
        return datetime.fromtimestamp(uuid.uuid4().int % 10**15 / 10**6, tz=UTC)
    if kind in ("UUIDField", "ForeignKey"):
        return uuid.uuid4()
    return f"marker-{uuid.uuid4().hex}"


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
    ``get_db_prep_save``). Inside ``merging()`` the rows are sent with the block's next
    statement."""
    if not objs:
        return []
    buffer = _writes.get()
    if buffer is not None and buffer.takes():
        buffer.add_insert(objs)
        for obj in objs:
            obj._state.adding = False
            obj._state.db = connection.alias
        return list(objs)
    _insert(objs)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return list(objs)


def _insert(objs: Sequence[Model]) -> None:
    with connection.cursor() as cursor:
        for sql, params, _ in _insert_statements(objs):
            cursor.execute(sql, params)


def _insert_statements(objs: Sequence[Model]) -> list[Statement]:
    model = type(objs[0])
    fields = _layout(model)[1]
    sql_columns = ", ".join(f'"{field.column}"' for field in fields)
    row = f"({placeholders(len(fields))})"
    # As many rows per statement as the database takes parameters (SQLite: few).
    size = max(1, connection.ops.bulk_batch_size(fields, objs))
    statements: list[Statement] = []
    for start in range(0, len(objs), size):
        batch = objs[start : start + size]
        params: list[Any] = []
        for obj in batch:
            params += [
                field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields
            ]
        sql = f"INSERT INTO {table(model)} ({sql_columns}) VALUES {', '.join([row] * len(batch))}"
        statements.append((sql, params, None))
    return statements


def update(obj: Model, names: Iterable[str], *, expect: dict[str, Any] | None = None) -> bool:
    """``obj.save(update_fields=names)`` as one UPDATE (``DatabaseError`` when the row is
    gone, as the ORM raises). With ``expect`` (``{field: value}``) the row is updated only if
    it still holds those values: returns whether it did. Inside ``merging()`` an update
    without ``expect`` is sent with the block's next statement."""
    meta = obj._meta
    fields = [meta.get_field(name) for name in sorted(names)]
    params = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in fields]
    buffer = _writes.get()
    if expect is None and buffer is not None and buffer.takes():
        buffer.add_update(obj, fields, params)
        return True
    assignments = ", ".join(f'"{field.column}" = %s' for field in fields)
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


# -- merged writes --------------------------------------------------------------------------


class _Writes:
    """Inserts and updates held back by ``merging()``: each kind of write (a model's inserts;
    a model's updates of one set of columns) is sent as one statement, in the order the
    kinds first appeared. A row written twice, or updated after its insert was held back,
    first sends everything held (so each row sees its writes in order)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], list[tuple[Model, list[Any]]]] = {}
        self.rows: dict[tuple[type[Model], Any], tuple[Any, ...]] = {}
        self.sending = False
        self.savepoints = _savepoints()

    def takes(self) -> bool:
        # Writes in a savepoint opened inside the block are sent at once: an error they
        # raise must surface inside it.
        return not self.sending and _savepoints() == self.savepoints

    def add_insert(self, objs: Sequence[Model]) -> None:
        for obj in objs:
            self._add(("insert", type(obj)), obj, [])

    def add_update(self, obj: Model, fields: list[Field], params: list[Any]) -> None:
        key = ("update", type(obj), tuple(field.column for field in fields))
        self._add(key, obj, params)

    def _add(self, key: tuple[Any, ...], obj: Model, params: list[Any]) -> None:
        row = (type(obj), obj.pk)
        if row in self.rows:
            self.send()
        self.rows[row] = key
        self.groups.setdefault(key, []).append((obj, params))

    def send(self) -> None:
        if not self.groups or self.sending:
            return
        self.sending = True
        try:
            for key, entries in self.groups.items():
                if key[0] == "insert":
                    _insert([obj for obj, _ in entries])
                else:
                    _update_rows(key[1], key[2], entries)
        finally:
            self.groups.clear()
            self.rows.clear()
            self.sending = False

    def take(self) -> list[Statement]:
        """The held writes as statements, in order; nothing is held any more."""
        statements: list[Statement] = []
        for key, entries in self.groups.items():
            if key[0] == "insert":
                statements += _insert_statements([obj for obj, _ in entries])
            else:
                statements.append(_update_statement(key[1], key[2], entries))
        self.groups.clear()
        self.rows.clear()
        return statements


def _binds_client_side(cursor: Any) -> bool:
    # psycopg is imported only on PostgreSQL (``merging`` runs only there).
    from psycopg import ClientCursor

    return isinstance(cursor, ClientCursor)


def _savepoints() -> int:
    # ``atomic(savepoint=False)`` blocks count as None: they open no savepoint.
    return sum(1 for sid in connection.savepoint_ids if sid is not None)


def _update_rows(model: type[Model], columns: tuple[str, ...], entries: list[Any]) -> None:
    """Update rows of ``model`` (each ``(obj, values of columns)``) in one statement."""
    sql, params, expected = _update_statement(model, columns, entries)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        _check_updated(cursor.rowcount, expected)


def _update_statement(
    model: type[Model], columns: tuple[str, ...], entries: list[Any]
) -> Statement:
    if len(entries) == 1:
        obj, params = entries[0]
        assignments = ", ".join(f'"{column}" = %s' for column in columns)
        sql = f'UPDATE {table(model)} SET {assignments} WHERE "{model._meta.pk.column}" = %s'
        return sql, [*params, model._meta.pk.get_db_prep_value(obj.pk, connection)], 1
    pk = model._meta.pk
    by_column = {field.column: field for field in model._meta.concrete_fields}
    types = [pk.db_type(connection), *(by_column[c].db_type(connection) for c in columns)]
    row = "(" + ", ".join(f"%s::{kind}" for kind in types) + ")"
    names = ", ".join(f'"{c}"' for c in (pk.column, *columns))
    assignments = ", ".join(f'"{c}" = v."{c}"' for c in columns)
    sql = (
        f"UPDATE {table(model)} AS t SET {assignments}"
        f" FROM (VALUES {', '.join([row] * len(entries))}) AS v ({names})"
        f' WHERE t."{pk.column}" = v."{pk.column}"'
    )
    params = []
    for obj, values in entries:
        params += [pk.get_db_prep_value(obj.pk, connection), *values]
    return sql, params, len(entries)


def _check_updated(rowcount: int, expected: int | None) -> None:
    if expected is not None and rowcount != expected:
        raise DatabaseError("Save with update_fields did not affect any rows.")


_writes: ContextVar[_Writes | None] = ContextVar("merged_writes", default=None)


@contextmanager
def merging() -> Iterator[None]:
    """Hold this block's ``insert`` and ``update`` (without ``expect``) writes and send
    each kind as one statement, just before the block's next other statement or at its end:
    a batch of worker reports writes its executions, outputs and queued work in a few
    statements instead of a few per report (PostgreSQL; elsewhere writes go at once). Only
    for code that reads through this connection, inside one transaction.

    The held statements travel in the same round trip as the statement they precede, when
    the driver binds parameters client-side (Django's default): ``held; …; next`` in one
    ``execute``, the cursor then moved on to the next statement's result for its caller."""
    if connection.vendor != "postgresql" or _writes.get() is not None:
        yield
        return
    writes = _Writes()

    def send_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if writes.sending or not writes.groups:
            return execute(sql, params, many, context)
        cursor = context["cursor"].cursor
        if many or type(params) not in (list, tuple) or not _binds_client_side(cursor):
            writes.send()
            return execute(sql, params, many, context)
        held = writes.take()
        combined = "; ".join([*(statement for statement, _, _ in held), sql])
        values = [value for _, held_params, _ in held for value in held_params]
        result = execute(combined, [*values, *params], many, context)
        for _, _, expected in held:
            _check_updated(cursor.rowcount, expected)
            cursor.nextset()
        return result

    token = _writes.set(writes)
    try:
        with connection.execute_wrapper(send_first):
            yield
            writes.send()
    finally:
        _writes.reset(token)
