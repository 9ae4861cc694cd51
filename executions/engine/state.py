"""What the engine knows about one flow execution inside one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from django.db import connection

from executions import dsl
from executions.engine.definitions import definition_of
from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization

if TYPE_CHECKING:
    from outputs.models import TaskOutput


def lock_flow_execution(
    *, flow_execution_id: UUID | str, organization: Organization | None = None
) -> FlowExecution:
    """The flow execution, row-locked until the transaction ends (``SELECT … FOR NO KEY
    UPDATE``).

    Every engine decision about one flow execution holds this lock, so concurrent reports,
    edits and cancels of it run one after another. ``NO KEY``: the engine never changes the
    row's key, and the lock must not block the foreign-key checks of rows that only refer to
    the flow execution (a worker's task statuses and outputs, committed meanwhile).
    ``NotFound`` when it is missing, deleted or (given ``organization``) another
    organization's.
    """
    qs = FlowExecution.objects.select_for_update(no_key=True).exclude(
        status=FlowExecutionStatus.DELETED
    )
    if organization is not None:
        qs = qs.filter(organization=organization)
    try:
        return qs.get(id=flow_execution_id)
    except (FlowExecution.DoesNotExist, ValueError):
        raise NotFound(f"Flow execution {flow_execution_id} not found.") from None


@dataclass
class Run:
    """A locked flow execution, its definition and the latest execution of each task
    (loaded on demand: ``load`` fetches what is not known yet in one query). ``outputs``
    caches the task outputs this operation has read or written (``None``: none exists)."""

    execution: FlowExecution
    definition: dsl.FlowDefinition
    actor: str = "system"
    latest: dict[str, TaskExecution] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    outputs: dict[str, TaskOutput | None] = field(default_factory=dict)

    @classmethod
    def of(cls, execution: FlowExecution, *, actor: str = "system") -> Run:
        return cls(execution=execution, definition=definition_of(execution), actor=actor)

    @property
    def flow_id(self) -> UUID:
        return self.execution.flow_id

    @property
    def pending(self) -> list[str]:
        return list(self.execution.pending_tasks or [])

    def load(self, names: Iterable[str] | None = None) -> dict[str, TaskExecution]:
        wanted = set(self.definition.names if names is None else names) - self.known
        if wanted:
            self.latest.update(latest_executions(self.execution.id, wanted))
            self.known |= wanted
        return self.latest

    def is_latest(self, task: TaskExecution) -> bool:
        """Whether ``task`` is its task's latest execution. Loads, in the same query, what
        reacting to it needs: its task, the tasks downstream and their dependencies."""
        dag = self.definition.dag
        if task.task_name in dag:
            downstream = dag.downstream(task.task_name)
            deps = {dep for name in downstream for dep in dag.upstream(name)}
            self.load({task.task_name, *downstream, *deps})
        current = self.latest.get(task.task_name)
        return current is None or current.id == task.id

    def record(self, task: TaskExecution) -> None:
        self.latest[task.task_name] = task
        self.known.add(task.task_name)

    def set_pending(self, names: list[str]) -> None:
        if names != self.pending:
            FlowExecution.objects.filter(id=self.execution.id).update(pending_tasks=names)
            self.execution.pending_tasks = names


def latest_executions(flow_execution_id: UUID, names: set[str]) -> dict[str, TaskExecution]:
    """The highest-index execution of each of ``names`` that has one."""
    qs = TaskExecution.objects.filter(flow_execution_id=flow_execution_id).exclude(
        status=TaskExecutionStatus.DELETED
    )
    if len(names) <= 500:
        qs = qs.filter(task_name__in=names)
    if connection.vendor == "postgresql":
        rows = qs.order_by("task_name", "-task_execution_idx").distinct("task_name")
        return {row.task_name: row for row in rows if row.task_name in names}
    latest: dict[str, TaskExecution] = {}
    for row in qs.order_by("task_name", "-task_execution_idx"):
        if row.task_name in names:
            latest.setdefault(row.task_name, row)
    return latest
