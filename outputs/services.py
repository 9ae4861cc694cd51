"""Task outputs: kept in step with task executions, and set explicitly by workers.

Every writer of a task output holds the flow execution's row lock (the engine takes it with
``engine.lock_flow_execution``; ``create_or_update_task_output`` takes it itself), so writes
to the outputs of one flow execution never interleave. The functions the engine calls run
inside the engine's transaction and take no further locks: they read and write only
``TaskOutput`` rows of that flow execution (lock order: flow execution, then its outputs),
so they cannot deadlock with it. Each change publishes ``task_output.created`` /
``task_output.updated`` through the outbox; nothing is pushed before commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.enums import FlowExecutionStatus, StaleStatus, TaskExecutionStatus
from executions.enums import TaskOutputStatus as S
from executions.models import FlowExecution, FlowVersion, TaskExecution
from flowplatform.exceptions import BadRequest, Forbidden, NotFound
from flowplatform.principal import Principal
from outputs.models import TaskOutput
from outputs.representations import task_output_data
from realtime.publisher import EventSpec, publish

CREATED = "task_output.created"
UPDATED = "task_output.updated"

TE = TaskExecutionStatus

# A task execution's status as its output shows it. The output enum (seed 001) has no
# ``cancelled`` or ``awaiting_input``: a cancelled task produced no (complete) result, like a
# failed one; a human task waiting for its input is in progress.
OUTPUT_STATUS_FOR_EXECUTION: dict[str, str] = {
    TE.QUEUED: S.QUEUED,
    TE.RUNNING: S.RUNNING,
    TE.AWAITING_INPUT: S.IN_PROGRESS,
    TE.COMPLETED: S.COMPLETED,
    TE.FAILED: S.FAILED,
    TE.CANCELLED: S.FAILED,
    TE.STALE: S.STALE,
    TE.DELETED: S.DELETED,
}

VALID_OUTPUT_STATUSES = frozenset(S.values)

# Fields a worker may set through POST /task-outputs.
WORKER_FIELDS = ("summary", "output", "tags", "status")


# --- called by the engine, inside its transaction, holding the flow execution lock ----------


@transaction.atomic(savepoint=False)
def sync_output_from_execution(
    *, task_execution: TaskExecution, flow_id: UUID, flow_version: int | None
) -> TaskOutput:
    """Make the output of ``task_execution``'s task mirror it: status, output, edited and
    stale status, modified_by. A summary or tags a worker set are kept.

    ``task_execution`` must be the task's latest execution. The caller holds the flow
    execution's row lock. Queries: one SELECT, then one UPDATE or INSERT (none when nothing
    changed), plus the outbox insert. Publishes ``task_output.created`` or ``.updated``.
    """
    stale = task_execution.stale_status == StaleStatus.STALE
    values = {
        "status": S.STALE if stale else OUTPUT_STATUS_FOR_EXECUTION[task_execution.status],
        "output": task_execution.output,
        "edited_status": task_execution.edited_status,
        "stale_status": task_execution.stale_status,
        "modified_by": task_execution.modified_by,
        "flow_version": flow_version,
    }
    row = _current_output(
        flow_execution_id=task_execution.flow_execution_id, task_name=task_execution.task_name
    )
    if row is None:
        row = TaskOutput(
            organization_id=task_execution.organization_id,
            flow_execution_id=task_execution.flow_execution_id,
            task_name=task_execution.task_name,
            summary=None,
            **values,
        )
    row, event = _save(row, values)
    if event:
        publish([_event(event, row, flow_id=flow_id)])
    return row


@transaction.atomic(savepoint=False)
def mark_outputs_stale(
    *, flow_execution: FlowExecution, task_names: Iterable[str], flow_id: UUID
) -> list[TaskOutput]:
    """Mark the existing outputs of ``task_names`` stale (``status`` and ``stale_status``).

    Tasks without an output are skipped (nothing displayable to invalidate); outputs already
    stale or soft-deleted are left alone. The caller holds the flow execution's row lock.
    Queries: one SELECT, one UPDATE per 500 changed outputs, one outbox insert. Returns the
    outputs it changed, each published as ``task_output.updated``.
    """
    rows = _outputs_of(flow_execution=flow_execution, task_names=set(task_names))
    changed = [
        row for row in rows if row.status != S.STALE or row.stale_status != StaleStatus.STALE
    ]
    if not changed:
        return []
    now = timezone.now()
    for row in changed:
        row.status, row.stale_status, row.updated_at = S.STALE, StaleStatus.STALE, now
    _bulk_update(changed, status=S.STALE, stale_status=StaleStatus.STALE, updated_at=now)
    publish([_event(UPDATED, row, flow_id=flow_id) for row in changed])
    return changed


@transaction.atomic(savepoint=False)
def apply_task_statuses(
    *,
    flow_execution: FlowExecution,
    flow_id: UUID,
    statuses: Sequence[tuple[str, str | None]],
) -> None:
    """Seed 004 "task output states recalculated": for each task named in ``statuses``
    (``(task_name, status)`` pairs, in the order reported), its existing output takes the last
    reported status that is a valid output status; other values (free text, None) are part of
    the history only. Tasks without an output, or whose output is soft-deleted, are skipped
    (a worker reporting ``deleted`` does soft-delete an output).

    The caller holds the flow execution's row lock. Queries: one SELECT, one UPDATE per
    distinct new status, one outbox insert (``task_output.updated`` per changed output).
    """
    wanted: dict[str, str] = {}
    for task_name, status in statuses:
        if status in VALID_OUTPUT_STATUSES:
            wanted[task_name] = status
    if not wanted:
        return
    rows = _outputs_of(flow_execution=flow_execution, task_names=set(wanted))
    changed = [row for row in rows if row.status != wanted[row.task_name]]
    if not changed:
        return
    now = timezone.now()
    by_status: dict[str, list[TaskOutput]] = {}
    for row in changed:
        row.status, row.updated_at = wanted[row.task_name], now
        by_status.setdefault(row.status, []).append(row)
    for status, group in by_status.items():
        _bulk_update(group, status=status, updated_at=now)
    publish([_event(UPDATED, row, flow_id=flow_id) for row in changed])


# --- POST /api/task-outputs ---------------------------------------------------------------


@transaction.atomic
def create_or_update_task_output(
    *, principal: Principal, flow_execution_id: UUID, data: Mapping[str, Any]
) -> tuple[TaskOutput, bool]:
    """Create the output of ``data["task_name"]`` in a flow execution, or update the one it
    has (one output per task: a retried report never duplicates). Returns ``(output,
    created)``.

    ``data`` is the validated body: ``task_name`` and ``summary`` always, ``output``,
    ``tags``, ``status``, ``modified_by``, ``organization_id`` when sent. On update only the
    fields sent change; on create the others take their defaults (status ``queued``).
    ``modified_by`` is the user's id for user keys, and for service keys the body's
    ``modified_by`` or ``system``. A repeat that changes nothing writes and publishes nothing.

    Raises Forbidden (body ``organization_id`` is not the caller's), NotFound (flow execution
    missing, deleted or another organization's), BadRequest (task not in the flow version).
    Takes the flow execution's row lock, the same lock order as the engine.
    """
    organization = principal.organization
    body_org = data.get("organization_id")
    if body_org is not None and body_org != organization.id:
        raise Forbidden("organization_id does not match the caller's organization.")
    execution = _lock_flow_execution(organization_id=organization.id, pk=flow_execution_id)
    task_name = data["task_name"]
    _check_task_name(execution, task_name)

    actor = principal.actor
    if principal.is_service and data.get("modified_by"):
        actor = data["modified_by"]
    values: dict[str, Any] = {k: data[k] for k in WORKER_FIELDS if k in data}
    values["modified_by"] = actor
    values["flow_version"] = execution.flow_version

    row = _current_output(flow_execution_id=execution.id, task_name=task_name)
    created = row is None
    if row is None:
        row = TaskOutput(
            organization_id=organization.id,
            flow_execution_id=execution.id,
            task_name=task_name,
            **{"status": S.QUEUED, "output": None, "tags": None, **values},
        )
    row, event = _save(row, values)
    if event:
        publish([_event(event, row, flow_id=execution.flow_id)])
    return row, created and event == CREATED


# --- helpers --------------------------------------------------------------------------------


def _current_output(*, flow_execution_id: UUID, task_name: str) -> TaskOutput | None:
    return TaskOutput.objects.filter(
        flow_execution_id=flow_execution_id, task_name=task_name
    ).first()


def _outputs_of(*, flow_execution: FlowExecution, task_names: set[str]) -> list[TaskOutput]:
    """The execution's outputs of ``task_names``; soft-deleted ones stay deleted."""
    if not task_names:
        return []
    qs = (
        TaskOutput.objects.filter(flow_execution_id=flow_execution.pk)
        .exclude(status=S.DELETED)
        .order_by("task_name")
    )
    if len(task_names) <= 500:
        return list(qs.filter(task_name__in=task_names))
    # A large downstream closure: one scan of the execution's outputs beats a huge IN list.
    return [row for row in qs if row.task_name in task_names]


def _bulk_update(rows: list[TaskOutput], **values: Any) -> None:
    ids = [row.pk for row in rows]
    for start in range(0, len(ids), 500):
        TaskOutput.objects.filter(pk__in=ids[start : start + 500]).update(**values)


def _save(row: TaskOutput, values: Mapping[str, Any]) -> tuple[TaskOutput, str | None]:
    """Insert ``row`` if it is new, else write the ``values`` that differ. Returns the row
    and the event type to publish (None when nothing changed)."""
    if row._state.adding:
        try:
            # Callers hold the flow execution lock, so a concurrent insert of the same task's
            # output cannot happen; the savepoint keeps the constraint a safe backstop.
            with transaction.atomic():
                row.save(force_insert=True)
            return row, CREATED
        except IntegrityError:
            existing = _current_output(
                flow_execution_id=row.flow_execution_id, task_name=row.task_name
            )
            if existing is None:
                raise
            row = existing
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    if not changed:
        return row, None
    for name in changed:
        setattr(row, name, values[name])
    row.save(update_fields=[*changed, "updated_at"])
    return row, UPDATED


def _event(event_type: str, row: TaskOutput, *, flow_id: UUID) -> EventSpec:
    return EventSpec(
        type=event_type,
        organization_id=row.organization_id,
        flow_id=flow_id,
        flow_execution_id=row.flow_execution_id,
        task_name=row.task_name,
        data=task_output_data(row),
    )


def _lock_flow_execution(*, organization_id: UUID, pk: UUID) -> FlowExecution:
    execution = (
        FlowExecution.objects.select_for_update()
        .filter(pk=pk, organization_id=organization_id)
        .exclude(status=FlowExecutionStatus.DELETED)
        .only("id", "organization_id", "flow_id", "flow_version", "status")
        .first()
    )
    if execution is None:
        raise NotFound("Flow execution not found.")
    return execution


def _check_task_name(execution: FlowExecution, task_name: str) -> None:
    """400 for a task the execution's flow version does not define (DESIGN §4)."""
    definition = (
        FlowVersion.objects.filter(flow_id=execution.flow_id, version=execution.flow_version)
        .values_list("definition", flat=True)
        .first()
    )
    tasks = definition.get("tasks") if isinstance(definition, dict) else None
    if not isinstance(tasks, list):
        return  # no readable definition to check against
    names = {task.get("name") for task in tasks if isinstance(task, dict)}
    if task_name not in names:
        raise BadRequest(
            f"Unknown task name {task_name!r} for this flow execution's flow version.",
            details=[{"loc": ["body", "task_name"], "msg": "Unknown task.", "type": "unknown"}],
        )
