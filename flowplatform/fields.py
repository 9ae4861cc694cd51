"""Request bodies declared once: a table of fields from which both the validator and the
OpenAPI description are derived.

A DRF serializer validates a body at a cost that dominates a small, frequent request (a
worker's report, a status batch): a hundred items through a nested serializer cost more
than inserting them. ``Body.validate`` checks the same rules with plain code and answers the
same 422 a serializer would (``{loc, msg, type}`` per problem, every problem at once);
``Body.serializer()`` builds the serializer drf-spectacular documents, from the same table,
so the schema states exactly what the validator enforces. Values are strict JSON types (a
number is not a string, ``true`` is not ``1``), as the schema promises.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flowplatform.exceptions import ValidationFailed

Problem = dict[str, Any]
_MISSING: Any = object()


@dataclass(frozen=True)
class Field:
    """One field: ``kind`` is ``text``, ``uuid``, ``integer``, ``number``, ``json``,
    ``object`` (``fields``), or ``list`` (items of ``item``)."""

    name: str
    kind: str
    required: bool = False
    nullable: bool = False
    default: Any = _MISSING
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    trim: bool = True  # text: surrounding whitespace is dropped and a blank refused
    enum: Sequence[str] | None = None  # documented choices; the caller decides the answer
    fields: Sequence[Field] = ()
    item: Field | None = None
    help_text: str = ""


@dataclass(frozen=True)
class Body:
    """A request body: its name in the schema and its fields."""

    name: str
    fields: Sequence[Field]
    _serializer: list[type[serializers.Serializer]] = field(
        default_factory=list, compare=False, repr=False
    )

    def validate(self, data: Any, loc: Sequence[str | int] = ("body",)) -> dict[str, Any]:
        """The validated body (unknown keys left out), or ValidationFailed (422)."""
        problems: list[Problem] = []
        value = _object(self.fields, data, list(loc), problems)
        if problems:
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"])
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ValidationFailed(f"{where}: {first['msg']}{more}", details=problems)
        return value

    def serializer(self) -> type[serializers.Serializer]:
        """The DRF serializer that documents this body (built once)."""
        if not self._serializer:
            self._serializer.append(_serializer_class(self.name, self.fields))
        return self._serializer[0]


# -- validating ----------------------------------------------------------------------------


def _problem(loc: list[str | int], msg: str, type_: str) -> Problem:
    return {"loc": loc, "msg": msg, "type": type_}


def _object(
    fields: Sequence[Field], data: Any, loc: list[str | int], problems: list[Problem]
) -> dict[str, Any]:
    if not isinstance(data, dict):
        problems.append(_problem(loc, "Expected an object.", "type_error"))
        return {}
    value: dict[str, Any] = {}
    for spec in fields:
        where = [*loc, spec.name]
        raw = data.get(spec.name, _MISSING)
        if raw is _MISSING:
            if spec.required:
                problems.append(_problem(where, "This field is required.", "required"))
            elif spec.default is not _MISSING:
                value[spec.name] = spec.default
            continue
        if raw is None and spec.kind != "json":
            if spec.nullable:
                value[spec.name] = None
            else:
                problems.append(_problem(where, "This field may not be null.", "null"))
            continue
        checked = _CHECKS[spec.kind](spec, raw, where, problems)
        if checked is not _MISSING:
            value[spec.name] = checked
    return value


def _text(spec: Field, raw: Any, loc: list[str | int], problems: list[Problem]) -> Any:
    if not isinstance(raw, str):
        problems.append(_problem(loc, "Expected a string.", "type_error"))
        return _MISSING
    text = raw.strip() if spec.trim else raw
    if spec.trim and not text:
        problems.append(_problem(loc, "This field may not be blank.", "blank"))
        return _MISSING
    if spec.max_length is not None and len(text) > spec.max_length:
        message = f"Ensure this field has no more than {spec.max_length} characters."
        problems.append(_problem(loc, message, "max_length"))
        return _MISSING
    if spec.min_length is not None and len(text) < spec.min_length:
        message = f"Ensure this field has at least {spec.min_length} characters."
        problems.append(_problem(loc, message, "min_length"))
        return _MISSING
    return text


def _uuid(spec: Field, raw: Any, loc: list[str | int], problems: list[Problem]) -> Any:
    if not isinstance(raw, str):
        problems.append(_problem(loc, "Expected a string.", "type_error"))
        return _MISSING
    try:
        return uuid.UUID(raw)
    except ValueError:
        problems.append(_problem(loc, "Must be a valid UUID.", "invalid"))
        return _MISSING


def _number(spec: Field, raw: Any, loc: list[str | int], problems: list[Problem]) -> Any:
    integer = spec.kind == "integer"
    wrong = isinstance(raw, bool) or not isinstance(raw, int if integer else int | float)
    if wrong:
        expected = "an integer" if integer else "a number"
        problems.append(_problem(loc, f"Expected {expected}.", "type_error"))
        return _MISSING
    if spec.minimum is not None and raw < spec.minimum:
        message = f"Ensure this value is greater than or equal to {spec.minimum}."
        problems.append(_problem(loc, message, "min_value"))
        return _MISSING
    if spec.maximum is not None and raw > spec.maximum:
        message = f"Ensure this value is less than or equal to {spec.maximum}."
        problems.append(_problem(loc, message, "max_value"))
        return _MISSING
    return raw


def _json(spec: Field, raw: Any, loc: list[str | int], problems: list[Problem]) -> Any:
    return raw  # any JSON value; the parser bounded it (flowplatform.parsers)


def _nested(spec: Field, raw: Any, loc: list[str | int], problems: list[Problem]) -> Any:
    found = len(problems)
    value = _object(spec.fields, raw, loc, problems)
    return value if len(problems) == found else _MISSING


def _list(spec: Field, raw: Any, loc: list[str | int], problems: list[Problem]) -> Any:
    if not isinstance(raw, list):
        problems.append(_problem(loc, "Expected an array.", "type_error"))
        return _MISSING
    if spec.min_length is not None and len(raw) < spec.min_length:
        message = f"Ensure this field has at least {spec.min_length} elements."
        problems.append(_problem(loc, message, "min_length"))
        return _MISSING
    if spec.max_length is not None and len(raw) > spec.max_length:
        message = f"Ensure this field has no more than {spec.max_length} elements."
        problems.append(_problem(loc, message, "max_length"))
        return _MISSING
    assert spec.item is not None
    check = _CHECKS[spec.item.kind]
    found = len(problems)
    items = []
    for index, item in enumerate(raw):
        if item is None and spec.item.kind != "json" and not spec.item.nullable:
            problems.append(_problem([*loc, index], "This field may not be null.", "null"))
            continue
        items.append(None if item is None else check(spec.item, item, [*loc, index], problems))
    return items if len(problems) == found else _MISSING


_CHECKS: dict[str, Callable[[Field, Any, list[str | int], list[Problem]], Any]] = {
    "text": _text,
    "uuid": _uuid,
    "integer": _number,
    "number": _number,
    "json": _json,
    "object": _nested,
    "list": _list,
}


# -- documenting ----------------------------------------------------------------------------


def _serializer_class(name: str, fields: Sequence[Field]) -> type[serializers.Serializer]:
    attrs = {spec.name: _serializer_field(name, spec) for spec in fields}
    return type(name, (serializers.Serializer,), attrs)


def _common(spec: Field) -> dict[str, Any]:
    options: dict[str, Any] = {"required": spec.required, "help_text": spec.help_text or None}
    if spec.nullable or spec.kind == "json":
        options["allow_null"] = True
    if spec.default is not _MISSING:
        options["default"] = spec.default
    return options


def _serializer_field(owner: str, spec: Field) -> serializers.Field:
    options = _common(spec)
    if spec.kind == "text":
        text: type[serializers.CharField] = serializers.CharField
        if spec.enum is not None:  # documented choices; another value is the caller's 400
            documented = {"type": "string", "enum": list(spec.enum)}
            text = extend_schema_field(documented)(type(_title(owner, spec), (text,), {}))
        return text(
            trim_whitespace=spec.trim,
            allow_blank=not spec.trim and not spec.min_length,
            max_length=spec.max_length,
            min_length=spec.min_length,
            **options,
        )
    if spec.kind == "uuid":
        return serializers.UUIDField(**options)
    if spec.kind == "integer":
        return serializers.IntegerField(min_value=spec.minimum, max_value=spec.maximum, **options)
    if spec.kind == "number":
        return serializers.FloatField(min_value=spec.minimum, max_value=spec.maximum, **options)
    if spec.kind == "json":
        return serializers.JSONField(**options)
    if spec.kind == "object":
        return _serializer_class(_title(owner, spec), spec.fields)(**options)
    assert spec.item is not None
    return serializers.ListField(
        child=_serializer_field(owner, spec.item),
        min_length=spec.min_length,
        max_length=spec.max_length,
        **options,
    )


def _title(owner: str, spec: Field) -> str:
    """The schema name of a nested part: its own if capitalised, else the owner's plus its."""
    if spec.name[:1].isupper():
        return spec.name
    return owner + spec.name.title().replace("_", "")
