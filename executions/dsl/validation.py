"""``validate_definition``: every problem of a definition at once, or a ``FlowDefinition``."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from executions.dag import DAG, format_cycle
from executions.dsl.model import (
    DefinitionError,
    FlowDefinition,
    Problem,
    RetryPolicy,
    TaskSpec,
    _kind,
)
from executions.dsl.parsing import parse_definition
from executions.dsl.schemas import _schema_problems
from executions.dsl.templates import INPUT_ROOT, OUTPUT_KEY, Reference, find_placeholders, join_loc
from executions.worker.specs import BUILTIN_EXECUTORS, EXECUTOR_NAME_PATTERN

TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,199}$"
MAX_EXECUTOR_NAME_LENGTH = 200
MAX_ATTEMPTS = 100
MAX_BACKOFF_SECONDS = 24 * 3600
MAX_BACKOFF_FACTOR = 10
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_DEPTH = 64
# YAML aliases let a few hundred bytes expand into billions of values; stop counting early.
MAX_JSON_VALUES = 250_000

_TASK_NAME = re.compile(TASK_NAME_PATTERN)
_EXECUTOR_NAME = re.compile(EXECUTOR_NAME_PATTERN)
_TOP_KEYS = ("tasks", "description")
_TASK_KEYS = (
    "name",
    "task_executor_name",
    "parameters",
    "depends_on",
    "retries",
    "timeout_seconds",
    "description",
)
_RETRY_KEYS = ("max_attempts", "backoff_seconds", "backoff_factor")


def validate_definition(source: str | bytes | Mapping[str, Any]) -> FlowDefinition:
    """Parse (when given text) and validate a definition into a ``FlowDefinition``.

    Raises ``DefinitionError`` listing every problem, so an author fixes them in one pass.
    """
    checker = _Checker()
    flow = checker.check(parse_definition(source))
    if flow is None:
        # Cross-task problems are found last; list everything in document order.
        raise DefinitionError(sorted(checker.problems, key=_task_position))
    return flow


def _task_position(problem: Problem) -> int:
    match = re.match(r"tasks\[([0-9]+)\]", problem.loc)
    return int(match.group(1)) if match else -1


@dataclass
class _Draft:
    """What one task said, kept until the cross-task checks have run."""

    index: int
    loc: str
    name: str | None = None
    executor: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    depends_on: list[tuple[str, str]] = field(default_factory=list)  # (loc, task name)
    references: list[tuple[str, Reference]] = field(default_factory=list)  # (loc, reference)
    retries: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    description: str | None = None
    dependencies: tuple[str, ...] = ()

    def to_spec(self) -> TaskSpec:
        assert self.name is not None and self.executor is not None
        return TaskSpec(
            name=self.name,
            task_executor_name=self.executor,
            parameters=self.parameters,
            depends_on=tuple(dict.fromkeys(name for _, name in self.depends_on)),
            dependencies=self.dependencies,
            retries=self.retries,
            timeout_seconds=self.timeout_seconds,
            description=self.description,
        )


class _Checker:
    """Collects problems instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._budget = MAX_JSON_VALUES

    def add(self, loc: str, msg: str, type_: str) -> None:
        self.problems.append(Problem(loc, msg, type_))

    def check(self, raw: dict[str, Any]) -> FlowDefinition | None:
        self._unknown_keys(raw, "", _TOP_KEYS)
        description = self._text(raw, "description", "")
        drafts = [
            draft
            for index, task in enumerate(self._task_list(raw))
            if (draft := self._task(index, task)) is not None
        ]
        known = self._names(drafts)
        for draft in drafts:
            self._links(draft, known)
        graph = {name: draft.dependencies for name, draft in known.items()}
        for cycle in DAG(graph).find_cycles():
            self.add(known[cycle[0]].loc, f"dependency cycle: {format_cycle(cycle)}", "cycle")
        if self.problems:
            return None
        return FlowDefinition(tasks=tuple(d.to_spec() for d in drafts), description=description)

    # -- one task ---------------------------------------------------------------------------

    def _task_list(self, raw: dict[str, Any]) -> list[Any]:
        if "tasks" not in raw:
            self.add("tasks", "a flow needs a 'tasks' list", "missing")
            return []
        tasks = raw["tasks"]
        if not isinstance(tasks, list):
            self.add("tasks", f"must be a list of tasks, got {_kind(tasks)}", "type_error")
            return []
        if not tasks:
            self.add("tasks", "a flow needs at least one task", "empty")
        return tasks

    def _task(self, index: int, raw: Any) -> _Draft | None:
        draft = _Draft(index=index, loc=f"tasks[{index}]")
        if not isinstance(raw, Mapping):
            self.add(draft.loc, f"a task must be a mapping, got {_kind(raw)}", "type_error")
            return None
        self._unknown_keys(raw, draft.loc, _TASK_KEYS)
        draft.name = self._task_name(raw, draft.loc)
        draft.executor = self._executor_name(raw, draft.loc)
        self._parameters(raw, draft)
        draft.depends_on = self._depends_on(raw, draft.loc)
        draft.retries = self._retries(raw.get("retries"), join_loc(draft.loc, "retries"))
        draft.timeout_seconds = self._number(
            raw,
            "timeout_seconds",
            draft.loc,
            minimum=0,
            maximum=MAX_TIMEOUT_SECONDS,
            exclusive_minimum=True,
        )
        draft.description = self._text(raw, "description", draft.loc)
        return draft

    def _task_name(self, raw: Mapping[str, Any], loc: str) -> str | None:
        name = self._required_text(raw, "name", loc)
        if name is None:
            return None
        if not _TASK_NAME.fullmatch(name):
            self.add(
                join_loc(loc, "name"),
                f"invalid task name {name!r}: 1-200 characters, a letter or '_' first, "
                "then letters, digits, '_' or '-'",
                "invalid_name",
            )
        elif name == INPUT_ROOT:
            self.add(
                join_loc(loc, "name"), "'input' is reserved for the flow input", "reserved_name"
            )
        # Even a bad name is returned so references to it do not add noise.
        return name

    def _executor_name(self, raw: Mapping[str, Any], loc: str) -> str | None:
        name = self._required_text(raw, "task_executor_name", loc)
        if name is not None and (
            not _EXECUTOR_NAME.fullmatch(name) or len(name) > MAX_EXECUTOR_NAME_LENGTH
        ):
            self.add(
                join_loc(loc, "task_executor_name"),
                f"invalid executor name {name!r}: up to {MAX_EXECUTOR_NAME_LENGTH} characters, "
                "a lowercase letter first, then lowercase letters, digits, '_', '.' or '-'",
                "invalid_executor_name",
            )
        return name

    def _parameters(self, raw: Mapping[str, Any], draft: _Draft) -> None:
        loc = join_loc(draft.loc, "parameters")
        params = raw.get("parameters")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            self.add(loc, f"must be a mapping, got {_kind(params)}", "type_error")
            return
        before = len(self.problems)
        draft.parameters = self._json_copy(params, loc, depth=0)
        if len(self.problems) > before:
            return  # not JSON: placeholders and schema would only add confusion
        for text_loc, text in _strings(draft.parameters, loc):
            for placeholder, ref in find_placeholders(text):
                if ref is None:
                    self.add(
                        text_loc,
                        f"malformed placeholder {placeholder}: expected {{{{input.<path>}}}} or "
                        "{{<task>.output.<path>}} with dot-separated keys and no filters",
                        "invalid_placeholder",
                    )
                else:
                    draft.references.append((text_loc, ref))
        spec = BUILTIN_EXECUTORS.get(draft.executor or "")
        if spec is not None:
            for problem in _schema_problems(spec, draft.parameters, loc):
                self.problems.append(problem)

    def _depends_on(self, raw: Mapping[str, Any], loc: str) -> list[tuple[str, str]]:
        loc = join_loc(loc, "depends_on")
        deps = raw.get("depends_on")
        if deps is None:
            return []
        if not isinstance(deps, list):
            self.add(loc, f"must be a list of task names, got {_kind(deps)}", "type_error")
            return []
        found = []
        for i, dep in enumerate(deps):
            if isinstance(dep, str):
                found.append((join_loc(loc, i), dep))
            else:
                self.add(join_loc(loc, i), f"must be a task name, got {_kind(dep)}", "type_error")
        return found

    def _retries(self, raw: Any, loc: str) -> RetryPolicy:
        if raw is None:
            return RetryPolicy()
        if not isinstance(raw, Mapping):
            self.add(loc, f"must be a mapping, got {_kind(raw)}", "type_error")
            return RetryPolicy()
        self._unknown_keys(raw, loc, _RETRY_KEYS)
        values = {
            "max_attempts": self._number(
                raw, "max_attempts", loc, minimum=1, maximum=MAX_ATTEMPTS, integer=True
            ),
            "backoff_seconds": self._number(
                raw, "backoff_seconds", loc, minimum=0, maximum=MAX_BACKOFF_SECONDS
            ),
            "backoff_factor": self._number(
                raw, "backoff_factor", loc, minimum=1, maximum=MAX_BACKOFF_FACTOR
            ),
        }
        return RetryPolicy(**{key: value for key, value in values.items() if value is not None})

    # -- across tasks -----------------------------------------------------------------------

    def _names(self, drafts: list[_Draft]) -> dict[str, _Draft]:
        """First task of each name, in definition order; later ones are duplicates."""
        known: dict[str, _Draft] = {}
        for draft in drafts:
            if draft.name is None:
                continue
            if draft.name in known:
                self.add(
                    join_loc(draft.loc, "name"),
                    f"duplicate task name {draft.name!r} (first used by {known[draft.name].loc})",
                    "duplicate_name",
                )
            else:
                known[draft.name] = draft
        return known

    def _links(self, draft: _Draft, known: dict[str, _Draft]) -> None:
        """Resolve ``depends_on`` and placeholder roots into ``draft.dependencies``."""
        deps: set[str] = set()
        for loc, name in draft.depends_on:
            if name == draft.name:
                self.add(loc, f"task {name!r} cannot depend on itself", "self_reference")
            elif name not in known:
                self.add(loc, f"unknown task {name!r}{_suggest(name, known)}", "unknown_reference")
            else:
                deps.add(name)
        for loc, ref in draft.references:
            if ref.is_input:
                continue
            if ref.root == draft.name:
                self.add(loc, f"{ref.text}: a task cannot use its own output", "self_reference")
            elif ref.root not in known:
                self.add(
                    loc,
                    f"unknown reference {ref.text}: {ref.root!r} is neither 'input' nor a task "
                    f"of this flow{_suggest(ref.root, known)}",
                    "unknown_reference",
                )
            elif ref.segments[:1] != (OUTPUT_KEY,):
                self.add(
                    loc,
                    f"unknown path {ref.text}: a task's data is reached through '.output', "
                    f"e.g. {{{{{ref.root}.output}}}}",
                    "unknown_output_path",
                )
            else:
                deps.add(ref.root)
        draft.dependencies = tuple(sorted(deps, key=lambda name: known[name].index))

    # -- small helpers ----------------------------------------------------------------------

    def _unknown_keys(self, raw: Mapping[Any, Any], loc: str, allowed: tuple[str, ...]) -> None:
        for key in raw:
            if key not in allowed:
                self.add(
                    join_loc(loc, str(key)),
                    f"unknown key {key!r}; allowed: {', '.join(allowed)}",
                    "unknown_key",
                )

    def _required_text(self, raw: Mapping[str, Any], key: str, loc: str) -> str | None:
        if raw.get(key) is None:
            self.add(join_loc(loc, key), f"a task needs a {key!r}", "missing")
            return None
        return self._text(raw, key, loc)

    def _text(self, raw: Mapping[str, Any], key: str, loc: str) -> str | None:
        value = raw.get(key)
        if value is None or isinstance(value, str):
            return value
        self.add(join_loc(loc, key), f"must be a string, got {_kind(value)}", "type_error")
        return None

    def _number(
        self,
        raw: Mapping[str, Any],
        key: str,
        loc: str,
        *,
        minimum: float,
        maximum: float,
        integer: bool = False,
        exclusive_minimum: bool = False,
    ) -> Any:
        """The number at ``raw[key]`` if it is in range, else ``None`` (absent means default)."""
        value = raw.get(key)
        if value is None:
            return None
        loc = join_loc(loc, key)
        wanted = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            expected = "an integer" if integer else "a number"
            self.add(loc, f"must be {expected}, got {_kind(value)}", "type_error")
            return None
        low = value <= minimum if exclusive_minimum else value < minimum
        if low or not value <= maximum:  # also catches NaN
            bound = f"greater than {minimum}" if exclusive_minimum else f"at least {minimum}"
            self.add(loc, f"must be {bound} and at most {maximum}, got {value}", "invalid_value")
            return None
        return value

    def _json_copy(self, value: Any, loc: str, *, depth: int) -> Any:
        """A private copy of ``value`` as plain JSON (lists, str keys), reporting what is not."""
        self._budget -= 1
        if self._budget == 0:
            self.add(loc, f"definition has more than {MAX_JSON_VALUES} values", "invalid_value")
        if self._budget <= 0:
            return None
        if value is None or isinstance(value, (str, int)):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.add(loc, "NaN and infinity are not JSON numbers", "invalid_value")
            return None
        if depth >= MAX_DEPTH:
            self.add(loc, f"nested more than {MAX_DEPTH} levels deep", "invalid_value")
            return None
        if isinstance(value, Mapping):
            copy: dict[str, Any] = {}
            for key, item in value.items():
                if isinstance(key, str):
                    copy[key] = self._json_copy(item, join_loc(loc, key), depth=depth + 1)
                else:
                    self.add(
                        join_loc(loc, str(key)),
                        f"keys must be strings, got {_kind(key)} {key!r}",
                        "invalid_value",
                    )
            return copy
        if isinstance(value, (list, tuple)):
            return [
                self._json_copy(item, join_loc(loc, i), depth=depth + 1)
                for i, item in enumerate(value)
            ]
        self.add(loc, f"{type(value).__name__} is not a JSON value", "invalid_value")
        return None


def _strings(value: Any, loc: str) -> Iterator[tuple[str, str]]:
    """Every string value (never a key) in a JSON value, with its location."""
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, join_loc(loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, join_loc(loc, i))


def _suggest(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, [*known, INPUT_ROOT], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
