"""Placeholders: parsing ``{{…}}`` references and rendering a task's input at run time."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

from executions.dsl.model import TaskSpec, _kind

INPUT_ROOT = "input"
OUTPUT_KEY = "output"

_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_SEGMENT = re.compile(r"[^.\s]+")
_INDEX = re.compile(r"[0-9]+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class ResolutionError(ValueError):
    """A placeholder could not be resolved at run time; the engine fails the task with it.

    ``placeholder`` is the text as written, ``loc`` where it sits in the parameters and
    ``segment`` the path segment that was missing (``None`` when a whole output is missing).
    """

    def __init__(self, message: str, *, placeholder: str, loc: str, segment: str | None) -> None:
        self.placeholder = placeholder
        self.loc = loc
        self.segment = segment
        super().__init__(message)


@dataclass(frozen=True)
class Reference:
    """One placeholder: ``{{fetch.output.json.title}}`` has root ``fetch`` and segments
    ``("output", "json", "title")``; ``{{input.url}}`` has root ``input`` and ``("url",)``."""

    text: str
    root: str
    segments: tuple[str, ...]

    @property
    def is_input(self) -> bool:
        return self.root == INPUT_ROOT

    @property
    def path(self) -> tuple[str, ...]:
        """Segments below ``input`` or below a task's ``output``."""
        return self.segments if self.is_input else self.segments[1:]


@lru_cache(maxsize=4096)  # the engine resolves the same few placeholders over and over
def parse_placeholder(text: str) -> Reference | None:
    """``Reference`` for placeholder text such as ``{{ input.url }}``, ``None`` if malformed."""
    match = _PLACEHOLDER.fullmatch(text)
    if match is None:
        return None
    parts = match.group(1).strip().split(".")
    if not all(_SEGMENT.fullmatch(part) for part in parts):
        return None
    return Reference(text=text, root=parts[0], segments=tuple(parts[1:]))


def find_placeholders(text: str) -> list[tuple[str, Reference | None]]:
    """Every ``{{…}}`` in ``text`` as ``(placeholder text, Reference or None if malformed)``."""
    return [(m.group(0), parse_placeholder(m.group(0))) for m in _PLACEHOLDER.finditer(text)]


def is_placeholder(value: Any) -> bool:
    """True for a string that is exactly one placeholder (its type is only known at run time)."""
    return isinstance(value, str) and _PLACEHOLDER.fullmatch(value) is not None


def join_loc(base: str, key: str | int) -> str:
    """Extend a location: ``tasks`` + 2 → ``tasks[2]``, + ``url`` → ``.url``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key, ensure_ascii=False)}]"


def resolve_input(*, task: TaskSpec, flow_input: Any, upstream_outputs: Mapping[str, Any]) -> Any:
    """The task's parameters with every placeholder replaced: the input a worker receives.

    ``upstream_outputs`` maps task names to their current outputs (only those of
    ``task.dependencies`` are needed).  The result may share objects with ``flow_input`` and
    ``upstream_outputs``; serialize it rather than mutate it.  Raises ``ResolutionError``.
    """
    return render_value(
        task.parameters, flow_input=flow_input, upstream_outputs=upstream_outputs, loc="parameters"
    )


def render_value(
    value: Any, *, flow_input: Any, upstream_outputs: Mapping[str, Any], loc: str = ""
) -> Any:
    """Render placeholders anywhere in a JSON value (keys are never templated)."""

    def render(value: Any, loc: str) -> Any:
        if isinstance(value, str):
            if "{{" not in value:
                return value
            if _PLACEHOLDER.fullmatch(value):
                return _lookup(value, flow_input, upstream_outputs, loc)
            return _PLACEHOLDER.sub(
                lambda m: _as_text(_lookup(m.group(0), flow_input, upstream_outputs, loc)), value
            )
        if isinstance(value, Mapping):
            return {key: render(item, join_loc(loc, key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [render(item, join_loc(loc, i)) for i, item in enumerate(value)]
        return value

    return render(value, loc)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _lookup(text: str, flow_input: Any, outputs: Mapping[str, Any], loc: str) -> Any:
    def fail(reason: str, segment: str | None = None) -> ResolutionError:
        where = f" in {loc}" if loc else ""
        return ResolutionError(
            f"cannot resolve {text}{where}: {reason}", placeholder=text, loc=loc, segment=segment
        )

    ref = parse_placeholder(text)
    if ref is None:
        raise fail("malformed placeholder")
    if ref.is_input:
        value, walked = flow_input, INPUT_ROOT
    elif ref.segments[:1] != (OUTPUT_KEY,):
        raise fail(f"expected {{{{{ref.root}.output…}}}}")
    elif ref.root not in outputs:
        raise fail(f"the output of task {ref.root!r} is not available")
    else:
        value, walked = outputs[ref.root], f"{ref.root}.{OUTPUT_KEY}"
    for segment in ref.path:
        if isinstance(value, Mapping):
            if segment not in value:
                keys = ", ".join(repr(k) for k in islice(value, 10)) or "none"
                raise fail(f"{walked} has no key {segment!r} (keys: {keys})", segment)
            value = value[segment]
        elif isinstance(value, (list, tuple)):
            if not _INDEX.fullmatch(segment):
                raise fail(f"{walked} is a list; {segment!r} is not an index", segment)
            if int(segment) >= len(value):
                raise fail(
                    f"index {segment} is out of range, {walked} has {len(value)} items", segment
                )
            value = value[int(segment)]
        else:
            raise fail(f"{walked} is {_kind(value)}, it has no {segment!r}", segment)
        walked = f"{walked}.{segment}"
    return value
