"""The validated flow: ``FlowDefinition``, ``TaskSpec``, ``RetryPolicy``, and ``Problem`` /
``DefinitionError`` for what is wrong with a definition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from executions.dag import DAG
from executions.worker.specs import BUILTIN_EXECUTORS, ExecutorSpec

# Caps the exponential backoff so the engine can always turn a delay into a datetime.
MAX_RETRY_DELAY_SECONDS = 24 * 3600


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

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def defines(self, name: str) -> bool:
        return name in self._by_name

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
