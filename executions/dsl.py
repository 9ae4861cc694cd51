"""Flow definitions: parsing, validation and placeholder resolution (DESIGN §7).

Pure Python (no Django, no ORM): services parse and validate here, then persist; the engine
calls ``resolve_input`` when it queues a task.  A definition is YAML or JSON text, or a parsed
mapping ``{"tasks": [...], "description"?: str}``.

Placeholders are ``{{input}}``, ``{{input.<path>}}``, ``{{<task>.output}}`` and
``{{<task>.output.<path>}}``; a path is dot-separated keys, an all-digit segment indexes a list.
A string that is exactly one placeholder becomes the referenced JSON value; inside longer text
the value is rendered as text (strings as-is, anything else as compact JSON).  Every ``{{…}}``
in a parameter string is a placeholder: there is no escape for literal double braces.

Validation reports every problem at once as ``Problem(loc, msg, type)``.  Types:
``syntax_error``, ``type_error``, ``missing``, ``empty``, ``unknown_key``, ``invalid_name``,
``reserved_name``, ``duplicate_name``, ``invalid_executor_name``, ``invalid_value``,
``invalid_placeholder``, ``unknown_reference``, ``unknown_output_path``, ``self_reference``,
``cycle``, and ``parameters.<keyword>`` when a built-in executor's JSON Schema rejects a value.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from executions.dag import DAG, format_cycle
from executions.worker.specs import BUILTIN_EXECUTORS, EXECUTOR_NAME_PATTERN, ExecutorSpec

__all__ = [
    "DefinitionError",
    "FlowDefinition",
    "Problem",
    "Reference",
    "ResolutionError",
    "RetryPolicy",
    "TaskSpec",
    "find_placeholders",
    "is_placeholder",
    "join_loc",
    "parse_definition",
    "parse_placeholder",
    "render_value",
    "resolve_input",
    "validate_definition",
]

INPUT_ROOT = "input"
OUTPUT_KEY = "output"
# Caps the exponential backoff so the engine can always turn a delay into a datetime.
MAX_RETRY_DELAY_SECONDS = 24 * 3600

_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_SEGMENT = re.compile(r"[^.\s]+")
_INDEX = re.compile(r"[0-9]+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Problem:
    """One validation problem; ``loc`` reads like ``tasks[2].parameters.url``."""

    loc: str
    msg: str
    type: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg, "type": self.type}


class DefinitionError(ValueError):
    """The definition is invalid; ``problems`` lists every problem found, in document order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        listed = "; ".join(f"{p.loc}: {p.msg}" for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"invalid flow definition: {listed}{more}")


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
class RetryPolicy:
    """How often a failed task is tried again and how long to wait in between."""

    max_attempts: int = 1
    backoff_seconds: float = 0
    backoff_factor: float = 2

    def allows_retry(self, attempts_made: int) -> bool:
        """Whether another attempt may follow ``attempts_made`` failed ones."""
        return attempts_made < self.max_attempts

    def delay_after(self, attempts_made: int) -> float:
        """Seconds to wait before the next attempt after ``attempts_made`` failed ones.

        ``backoff_seconds`` after the first failure, multiplied by ``backoff_factor`` after
        each further one, capped at ``MAX_RETRY_DELAY_SECONDS``.
        """
        try:
            delay = self.backoff_seconds * float(self.backoff_factor) ** max(attempts_made - 1, 0)
        except OverflowError:
            delay = MAX_RETRY_DELAY_SECONDS
        return float(min(delay, MAX_RETRY_DELAY_SECONDS))

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff_seconds": self.backoff_seconds,
            "backoff_factor": self.backoff_factor,
        }


@dataclass(frozen=True)
class TaskSpec:
    """A validated task.  ``parameters`` is a private JSON copy: treat it as read-only.

    ``depends_on`` is what the author wrote; ``dependencies`` adds the tasks referenced by
    placeholders, ordered by definition order.  The engine schedules on ``dependencies``.
    """

    name: str
    task_executor_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    retries: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    description: str | None = None

    @property
    def builtin_executor(self) -> ExecutorSpec | None:
        return BUILTIN_EXECUTORS.get(self.task_executor_name)

    @property
    def claimable(self) -> bool:
        """False for executors no worker claims (``human_review`` waits for a person)."""
        spec = self.builtin_executor
        return spec.claimable if spec is not None else True

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "task_executor_name": self.task_executor_name,
            "parameters": self.parameters,
            "depends_on": list(self.depends_on),
            "retries": self.retries.to_dict(),
        }
        if self.timeout_seconds is not None:
            data["timeout_seconds"] = self.timeout_seconds
        if self.description is not None:
            data["description"] = self.description
        return data


@dataclass(frozen=True)
class FlowDefinition:
    """A valid, acyclic flow.  Build it with ``validate_definition``."""

    tasks: tuple[TaskSpec, ...]
    description: str | None = None

    @cached_property
    def _by_name(self) -> dict[str, TaskSpec]:
        return {task.name: task for task in self.tasks}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``; ``KeyError`` if there is none."""
        return self._by_name[name]

    @cached_property
    def dag(self) -> DAG:
        return DAG({task.name: task.dependencies for task in self.tasks})

    @property
    def order(self) -> tuple[str, ...]:
        """Stable topological order: dependencies first, then definition order."""
        return self.dag.topological_order()

    def to_dict(self) -> dict[str, Any]:
        """Canonical form for storage: defaults spelled out, validates to an equal flow."""
        data: dict[str, Any] = {"tasks": [task.to_dict() for task in self.tasks]}
        if self.description is not None:
            data["description"] = self.description
        return data


# -- parsing ----------------------------------------------------------------------------------


# libyaml's parser is about ten times faster than PyYAML's; resolving and constructing stay in
# Python either way, so the customisations below apply to both.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """Safe YAML with YAML 1.2 core-schema scalars and no duplicate keys.

    PyYAML follows YAML 1.1, where ``no`` is ``False``, ``12:30`` is the integer 750, ``010`` is
    octal and ``2024-01-01`` a date (not JSON).  Definitions must mean the same as their JSON
    twin, so only ``true``/``false`` are booleans, numbers look like JSON numbers and
    timestamps stay strings.  A duplicated key would silently drop the first value.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_REPLACED_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$"),
    list("-0123456789"),
)


class _JSONRejected(ValueError):
    """JSON text that parses but is not plain JSON (NaN, duplicate keys)."""


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JSONRejected(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _JSONRejected(f"{name} is not a JSON number")


def parse_definition(source: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Parse YAML or JSON text (or accept a mapping) into a dict; no validation beyond that.

    JSON is tried first (fast, and PyYAML trips over some valid JSON such as tab
    indentation); anything else is read as YAML.  Raises ``DefinitionError`` with one
    problem for unreadable text or a document that is not a mapping.
    """
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _whole("syntax_error", f"definition is not UTF-8 text: {exc}") from None
    if not isinstance(source, str):
        raise TypeError(f"a definition is text or a mapping, not {type(source).__name__}")
    document = _load_text(source)
    if not isinstance(document, dict):
        raise _whole(
            "type_error",
            f"a flow definition must be a mapping with a 'tasks' list, got {_kind(document)}",
        )
    return document


def _load_text(text: str) -> Any:
    try:
        if text.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(
                    text, object_pairs_hook=_strict_object, parse_constant=_reject_constant
                )
            except json.JSONDecodeError:
                pass  # not JSON after all: YAML flow style such as {tasks: []}
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except _JSONRejected as exc:
        raise _whole("syntax_error", f"invalid JSON: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        raise _whole("syntax_error", _yaml_message(exc, text)) from None
    except yaml.YAMLError as exc:
        raise _whole("syntax_error", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _whole("syntax_error", "definition is nested too deeply") from None


# An unquoted value starting with "{{" is a YAML flow mapping, the commonest slip in a definition.
_UNQUOTED_PLACEHOLDER = re.compile(r"(?:^|[:\-\[,])\s*\{\{")


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    detail = "; ".join(part for part in (exc.context, exc.problem) if part)
    if mark is None:
        return f"invalid YAML: {detail}"
    message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {detail}"
    lines = text.splitlines()
    if mark.line < len(lines) and _UNQUOTED_PLACEHOLDER.search(lines[mark.line]):
        message += ' (quote values that start with "{{", e.g. url: "{{input.url}}")'
    return message


def _whole(type_: str, msg: str) -> DefinitionError:
    return DefinitionError([Problem("definition", msg, type_)])


def _kind(value: Any) -> str:
    """The JSON type name of ``value``, for messages."""
    if value is None:
        return "null"
    for python_type, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (tuple, "array"),
        (Mapping, "object"),
    ):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


# -- placeholders -----------------------------------------------------------------------------


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


# -- validation -------------------------------------------------------------------------------

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


# -- executor parameter schemas ---------------------------------------------------------------

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
