"""What the engine knows about one flow execution inside one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import connection

from executions import dsl
from executions.engine import rows
from executions.engine.definitions import definition_of
from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from flowplatform.representation import as_uuid
from outputs.models import TaskOutput


def lock_flow_executions(
    *, flow_execution_ids: Iterable[UUID | str], organization: Organization | UUID
) -> dict[UUID, FlowExecution]:
    """The organization's live flow executions among ``flow_execution_ids``, row-locked until
    the transaction ends (``SELECT … FOR NO KEY UPDATE``), in one statement; those missing,
    deleted or another organization's are left out (``selectors.flow_executions_of``).

    Every engine decision about a flow execution holds this lock, so concurrent reports,
    edits and cancels of it run one after another. ``NO KEY``: the engine never changes the
    row's key, and the lock must not block the foreign-key checks of rows that only refer to
    the flow execution (a worker's task statuses and outputs, committed meanwhile).

    The rows are locked in the order of their ids. A transaction that holds several flow
    executions takes them all this way, at once, before any other lock: every other engine
    transaction holds a single flow execution (then perhaps its organization's row), so
    lock waits can never form a cycle."""
    wanted = sorted({pk for pk in map(as_uuid, flow_execution_ids) if pk is not None})
    if not wanted:
        return {}
    # ``flow_executions_of(organization).filter(id__in=wanted).order_by("id")``, locked: the
    # statement every batch of reports starts with, written once here without building the
    # ORM query (``test_lock_flow_executions_rule`` holds it to the selector).
    organization_id = getattr(organization, "pk", organization)
    sql = (
        f'WHERE t."id" IN ({rows.placeholders(len(wanted))}) AND NOT t."status" = %s'
        ' AND t."organization_id" = %s ORDER BY t."id"' + rows.lock_clause(no_key=True)
    )
    params = [
        *(rows.db_value(FlowExecution, "id", pk) for pk in wanted),
        FlowExecutionStatus.DELETED,
        rows.db_value(FlowExecution, "organization_id", organization_id),
    ]
    return {execution.id: execution for execution in rows.select(FlowExecution, sql, params)}


def lock_flow_execution(
    *, flow_execution_id: UUID | str, organization: Organization | UUID
) -> FlowExecution:
    """``lock_flow_executions`` of one: ``NotFound`` when it is missing, deleted or another
    organization's."""
    found = lock_flow_executions(flow_execution_ids=[flow_execution_id], organization=organization)
    if not found:
        raise NotFound(f"Flow execution {flow_execution_id} not found.")
    return next(iter(found.values()))


@dataclass
class Run:
    """A locked flow execution, its definition and the latest execution of each task
    (loaded on demand: ``load`` fetches what is not known yet in one query). ``outputs``
    caches the task outputs this operation has read or written (``None``: none exists).
    ``defer_pending``: ``pending_tasks`` changes are written by ``flush`` (once for a batch
    of reports), not each time; the operation must call it before its transaction ends."""

    execution: FlowExecution
    definition: dsl.FlowDefinition
    actor: str = "system"
    latest: dict[str, TaskExecution] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    outputs: dict[str, TaskOutput | None] = field(default_factory=dict)
    defer_pending: bool = False
    pending_changed: bool = False

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
        self.load_around(task.task_name)
        current = self.latest.get(task.task_name)
        return current is None or current.id == task.id

    def load_around(self, *task_names: str) -> dict[str, TaskExecution]:
        """Load (one query) what reacting to ``task_names`` needs: their latest executions,
        those of the tasks downstream and of their dependencies."""
        wanted = self.needed_around(*task_names)
        if wanted:
            self.load(wanted)
        return self.latest

    def needed_around(self, *task_names: str) -> set[str]:
        """The tasks whose latest executions reacting to ``task_names`` reads."""
        dag = self.definition.dag
        wanted: set[str] = set()
        for name in task_names:
            if name in dag:
                downstream = dag.downstream(name)
                wanted |= {name, *downstream}
                wanted |= {dep for later in downstream for dep in dag.upstream(later)}
        return wanted

    def around(self, *task_names: str) -> set[str]:
        """``task_names`` that are in the flow, and the tasks downstream of them."""
        dag = self.definition.dag
        found = {name for name in task_names if name in dag}
        return found | {later for name in found for later in dag.downstream(name)}

    def record(self, task: TaskExecution) -> None:
        self.latest[task.task_name] = task
        self.known.add(task.task_name)

    def set_pending(self, names: list[str]) -> None:
        if names != self.pending:
            self.execution.pending_tasks = names
            if self.defer_pending:
                self.pending_changed = True
            else:
                rows.update(self.execution, ["pending_tasks"])

    def flush(self) -> None:
        """Write what ``defer_pending`` held back."""
        if self.pending_changed:
            rows.update(self.execution, ["pending_tasks"])
            self.pending_changed = False


def latest_executions(flow_execution_id: UUID, names: set[str]) -> dict[str, TaskExecution]:
    """The highest-index execution of each of ``names`` that has one (one query)."""
    found = latest_executions_of({flow_execution_id: names})
    return next(iter(found.values()), {})


def load_runs(wanted: Sequence[tuple[Run, set[str]]]) -> None:
    """``Run.load`` for several runs (of distinct flow executions) in one query."""
    missing = [(run, names - run.known) for run, names in wanted]
    found = latest_executions_of({run.execution.id: names for run, names in missing})
    for run, names in missing:
        run.latest.update(found.get(run.execution.id, {}))
        run.known |= names


def latest_executions_of(
    names: dict[UUID, set[str]],
) -> dict[UUID, dict[str, TaskExecution]]:
    """For each flow execution, the highest-index execution of each of its ``names`` that
    has one (one query on PostgreSQL, one per flow execution elsewhere)."""
    names = {pk: wanted for pk, wanted in names.items() if wanted}
    if not names:
        return {}
    if connection.vendor == "postgresql":
        return _latest_by_index(names)
    return _latest_by_order(names)


def _latest_by_order(names: dict[UUID, set[str]]) -> dict[UUID, dict[str, TaskExecution]]:
    """The rule: of each task's executions that are not deleted, the one of the highest
    index (one query per flow execution)."""
    latest: dict[UUID, dict[str, TaskExecution]] = {}
    for flow_execution_id, wanted in names.items():
        sql = 'WHERE t."flow_execution_id" = %s AND NOT t."status" = %s'
        params: list[Any] = [
            rows.db_value(TaskExecution, "flow_execution_id", flow_execution_id),
            TaskExecutionStatus.DELETED,
        ]
        if len(wanted) <= 500:
            ordered = sorted(wanted)
            sql += f' AND t."task_name" IN ({rows.placeholders(len(ordered))})'
            params += ordered
        sql += ' ORDER BY t."task_name", t."task_execution_idx" DESC'
        found = latest.setdefault(flow_execution_id, {})
        for row in rows.select(TaskExecution, sql, params):
            if row.task_name in wanted:
                found.setdefault(row.task_name, row)
    return latest


def _latest_by_index(names: dict[UUID, set[str]]) -> dict[UUID, dict[str, TaskExecution]]:
    """PostgreSQL: ``_latest_by_order`` in one statement for every flow execution, one
    backward step of the unique key's index per task name however many executions each task
    has had (reading them all took 4.7 ms instead of 0.05 for a task run 3,000 times).
    ``test_latest_executions_rule`` holds it to the rule."""
    pairs = sorted((str(pk), name) for pk, wanted in names.items() for name in wanted)
    table = rows.table(TaskExecution)
    sql = (
        f"SELECT {rows.columns(TaskExecution)} FROM unnest(%s::uuid[], %s::text[]) AS n(fe, name)"
        f" CROSS JOIN LATERAL (SELECT * FROM {table} AS e"
        ' WHERE e."flow_execution_id" = n.fe AND e."task_name" = n.name'
        ' AND NOT e."status" = %s ORDER BY e."task_execution_idx" DESC LIMIT 1) AS t'
    )
    params = [[fe for fe, _ in pairs], [name for _, name in pairs], TaskExecutionStatus.DELETED]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = rows.instances(TaskExecution, cursor.fetchall())
    latest: dict[UUID, dict[str, TaskExecution]] = {}
    for row in found:
        latest.setdefault(row.flow_execution_id, {})[row.task_name] = row
    return latest
