"""Checking a built-in executor's parameters against its JSON Schema, excusing placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from executions.dsl.model import Problem
from executions.dsl.templates import is_placeholder, join_loc
from executions.worker.specs import ExecutorSpec

_validators: dict[str, Draft202012Validator] = {}


def _schema_problems(spec: ExecutorSpec, params: dict[str, Any], loc: str) -> list[Problem]:
    """Every JSON Schema error in ``params``, ignoring those a run-time value could fix.

    A value that is exactly one placeholder is only known at run time, so it counts as
    present (it is) and its type is not checked.
    """
    validator = _validators.get(spec.name)
    if validator is None:
        validator = _validators[spec.name] = Draft202012Validator(spec.parameters_schema)
    problems: list[Problem] = []
    required_seen: set[str] = set()
    for error in validator.iter_errors(params):
        if _excused(error):
            continue
        where = loc
        for part in error.absolute_path:
            where = join_loc(where, part)
        if error.validator == "required":
            # jsonschema raises one error per missing key; answer them all on the first.
            if where in required_seen:
                continue
            required_seen.add(where)
        problems.extend(_describe(error, where, spec.name))
    return problems


def _describe(error: ValidationError, loc: str, executor: str) -> list[Problem]:
    """Point at the offending key itself where jsonschema reports the enclosing object."""
    type_ = f"parameters.{error.validator}"
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        return [
            Problem(join_loc(loc, key), f"required by executor {executor!r}", type_)
            for key in error.validator_value
            if key not in instance
        ]
    if error.validator == "additionalProperties" and error.validator_value is False:
        allowed = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extras = [
            key
            for key in instance
            if key not in allowed and not any(re.search(p, key) for p in patterns)
        ]
        return [
            Problem(
                join_loc(loc, key),
                f"unknown parameter {key!r} for executor {executor!r}; "
                f"allowed: {', '.join(allowed) or 'none'}",
                type_,
            )
            for key in extras
        ]
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return [Problem(loc, message, type_)]


def _excused(error: ValidationError) -> bool:
    """Whether ``error`` would go away once placeholders hold suitable values."""
    if is_placeholder(error.instance):
        return True
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_excused(sub) for sub in subs) for subs in branches.values())
    return False
