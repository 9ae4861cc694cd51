"""Task outputs kept in step with task executions: one rule, ``output_values``, applied by
one function, ``sync_outputs``, for every engine change (queued, claimed, reported, retried,
cancelled, edited, marked stale).

An output shows its task's latest execution: status (``OUTPUT_STATUS_FOR_EXECUTION``;
``stale`` while the execution is stale), output, edited and stale status, actor, and the
flow version. A summary or tags a worker set are kept. A soft-deleted output stays deleted
until its task is queued again (a new run makes a new output).

Locking: the engine writes outputs in its transaction. Every *insert* of an output holds
its flow execution's row lock (``create`` in ``sync_outputs``, and ``report_task_output``
takes it for a new output), so two inserts of one task's output never race; a claim, which
holds no flow execution lock, only updates outputs that exist. Events go to the
operation's batch (``events.emit``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

from django.db import transaction
from django.utils import timezone

from executions.engine import rows
from executions.engine.definitions import check_task_names, definition_of
from executions.engine.events import collecting, emit
from executions.engine.state import lock_flow_execution
from executions.enums import StaleStatus, TaskExecutionStatus
from executions.models import TaskExecution
from executions.selectors import flow_executions_of
from flowplatform.principal import Principal
from outputs.enums import TaskOutputStatus as S
from outputs.models import TaskOutput
from outputs.representations import task_output_data
from realtime.publisher import EventSpec

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
# The statuses that bring a soft-deleted output back: its task was queued again.
REVIVING = frozenset({S.QUEUED, S.IN_PROGRESS})

Known = dict[str, TaskOutput | None]


def output_values(task: TaskExecution, flow_version: int | None) -> dict[str, Any]:
    """What the output of ``task``'s task shows while ``task`` is its latest execution."""
    stale = task.stale_status == StaleStatus.STALE
    return {
        "status": S.STALE if stale else OUTPUT_STATUS_FOR_EXECUTION[task.status],
        "output": task.output,
        "edited_status": task.edited_status,
        "stale_status": task.stale_status,
        "modified_by": task.modified_by,
        "flow_version": flow_version,
    }


def sync_outputs(
    tasks: Sequence[TaskExecution],
    *,
    flow_id: UUID,
    flow_version: int | None,
    known: Known | None = None,
    prefetch: Iterable[str] = (),
    create: bool = True,
) -> list[TaskOutput]:
    """Make the outputs of ``tasks`` (latest executions of one flow execution) follow them.

    ``known`` caches this transaction's outputs by task name (``None``: the task has none):
    read first and kept up to date, so an operation loads each output once. Outputs not
    known are loaded in one query, with those of ``prefetch`` (tasks the caller expects to
    sync next). With ``create`` a missing output is inserted (the caller holds the flow
    execution's lock); without, it is left missing. Writes: one INSERT for the missing
    outputs, one UPDATE per distinct change (outputs changing alike share it); the events
    go to the operation's batch. Returns the outputs."""
    if not tasks:
        return []
    by_name = {task.task_name: task for task in tasks}
    cache: Known = {} if known is None else known
    wanted = {*by_name, *prefetch} - cache.keys()
    if wanted & by_name.keys():
        load_outputs([(tasks[0].flow_execution_id, wanted, cache)])
    now = timezone.now()
    inserts: list[TaskOutput] = []
    updates: dict[str, tuple[dict[str, Any], list[TaskOutput]]] = {}
    announced: list[tuple[str, TaskOutput]] = []  # in the order of ``tasks``
    for name, task in by_name.items():
        values = output_values(task, flow_version)
        row = cache.get(name)
        if row is None:
            if create:
                row = TaskOutput(
                    id=uuid4(),
                    organization_id=task.organization_id,
                    flow_execution_id=task.flow_execution_id,
                    task_name=name,
                    summary=None,
                    tags=None,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                inserts.append(row)
                cache[name] = row
                announced.append((CREATED, row))
            continue
        if row.status == S.DELETED and values["status"] not in REVIVING:
            continue
        changed = {key: value for key, value in values.items() if getattr(row, key) != value}
        if changed:
            # Outputs that change the same way (e.g. tasks queued again) share one UPDATE.
            key = json.dumps(changed, sort_keys=True, default=str)
            updates.setdefault(key, (changed, []))[1].append(row)
            announced.append((UPDATED, row))
    for changed, group in updates.values():
        for row in group:
            for key, value in changed.items():
                setattr(row, key, value)
            row.updated_at = now
        _update(group, [*changed, "updated_at"])
    rows.insert(inserts)
    emit(*(_event(event_type, row, flow_id) for event_type, row in announced))
    return [row for name in by_name if (row := cache.get(name)) is not None]


def _update(group: list[TaskOutput], names: list[str]) -> None:
    if len(group) == 1:
        rows.update(group[0], names)  # merged with the operation's other writes
        return
    values = {name: getattr(group[0], name) for name in names}
    ids = [row.pk for row in group]
    for start in range(0, len(ids), 500):
        TaskOutput.objects.filter(pk__in=ids[start : start + 500]).update(**values)


def load_outputs(wanted: Sequence[tuple[UUID, Iterable[str], Known]]) -> None:
    """Fill each ``known`` with the outputs of its flow execution's ``names`` it lacks (soft
    deleted ones too), in one query for all the flow executions."""
    missing = [(pk, set(names) - known.keys(), known) for pk, names, known in wanted]
    missing = [(pk, names, known) for pk, names, known in missing if names]
    if not missing:
        return
    # One statement for every flow execution, without building the ORM query (each batch of
    # reports runs it): the outputs of exactly the (flow execution, task) pairs wanted.
    terms, params = [], []
    for pk, names, _ in missing:
        terms.append(
            f'(t."flow_execution_id" = %s AND t."task_name" IN ({rows.placeholders(len(names))}))'
        )
        params += [rows.db_value(TaskOutput, "flow_execution_id", pk), *sorted(names)]
    found = {
        (row.flow_execution_id, row.task_name): row
        for row in rows.select(TaskOutput, "WHERE " + " OR ".join(terms), params)
    }
    for pk, names, known in missing:
        known.update({name: found.get((pk, name)) for name in names})


def _event(event_type: str, row: TaskOutput, flow_id: UUID) -> EventSpec:
    return EventSpec(
        type=event_type,
        organization_id=row.organization_id,
        flow_id=flow_id,
        flow_execution_id=row.flow_execution_id,
        task_name=row.task_name,
        data=task_output_data(row),
    )


def publish_output(event_type: str, row: TaskOutput, *, flow_id: UUID) -> None:
    """Announce one output's change in the operation's batch."""
    emit(_event(event_type, row, flow_id))


# -- the status history's effect (POST …/task-status, seed 004) ------------------------------

VALID_OUTPUT_STATUSES = frozenset(S.values)


def wanted_statuses(statuses: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """Each task's last reported status that is a valid output status, in report order;
    other values (free text, None) are history only."""
    return {name: status for name, status in statuses if status in VALID_OUTPUT_STATUSES}


def outputs_changed_by(
    *, flow_execution_id: UUID, statuses: Sequence[tuple[str, str | None]]
) -> set[str]:
    """The tasks whose output ``apply_task_statuses`` would change now (one query, no lock):
    a worker's status history mostly repeats what its reports already set."""
    wanted = wanted_statuses(statuses)
    if not wanted:
        return set()
    current = (
        TaskOutput.objects.filter(flow_execution_id=flow_execution_id, task_name__in=list(wanted))
        .exclude(status=S.DELETED)
        .values_list("task_name", "status")
    )
    return {name for name, status in current if status != wanted[name]}


def apply_task_statuses(
    *, flow_execution_id: UUID, flow_id: UUID, statuses: Sequence[tuple[str, str | None]]
) -> None:
    """Seed 004 "task output states recalculated": each task named in ``statuses`` whose
    output exists takes its last valid reported status (``wanted_statuses``); a deleted
    output stays deleted (a worker reporting ``deleted`` does soft-delete one). One query,
    one UPDATE per distinct new status, the events in the operation's batch. The caller
    serializes the batches of the flow execution (``task_statuses``)."""
    wanted = wanted_statuses(statuses)
    if not wanted:
        return
    found = (
        TaskOutput.objects.filter(flow_execution_id=flow_execution_id, task_name__in=list(wanted))
        .exclude(status=S.DELETED)
        .order_by("task_name")
    )
    changed = [row for row in found if row.status != wanted[row.task_name]]
    if not changed:
        return
    now = timezone.now()
    by_status: dict[str, list[TaskOutput]] = {}
    for row in changed:
        row.status, row.updated_at = wanted[row.task_name], now
        by_status.setdefault(row.status, []).append(row)
    for group in by_status.values():
        _update(group, ["status", "updated_at"])
    emit(*(_event(UPDATED, row, flow_id) for row in changed))


# -- a worker's own output (POST /api/task-outputs, seed 001) ---------------------------------

# What a worker may set through POST /task-outputs.
WORKER_FIELDS = ("summary", "output", "tags", "status")


@transaction.atomic
def report_task_output(*, principal: Principal, data: Mapping[str, Any]) -> tuple[TaskOutput, bool]:
    """Create the output of ``data["task_name"]`` in the flow execution
    ``data["flow_execution_id"]``, or update the one it has (one output per task: a retried
    report never duplicates). Returns ``(output, created)``.

    ``data`` is the validated body: on update only the fields sent change; on create the
    others take their defaults (status ``queued``). A repeat that changes nothing writes
    and publishes nothing. Raises Forbidden (a body ``organization_id`` that is not the
    caller's), NotFound (the flow execution is missing, deleted or another
    organization's), BadRequest (a task the flow version does not define).

    Locks: an existing output is updated under its own row lock only (the hot path: a worker
    reporting its task's summary must not queue behind the engine's decisions about the
    flow execution). Creating one takes the flow execution's lock first, like every output
    insert, so two inserts of one task's output never race."""
    principal.check_body_organization(data)
    organization = principal.organization
    task_name = data["task_name"]
    row = (
        TaskOutput.objects.select_for_update(of=("self",))
        .select_related("flow_execution")
        .filter(
            flow_execution__in=flow_executions_of(organization=organization),
            flow_execution_id=data["flow_execution_id"],
            task_name=task_name,
        )
        .order_by()
        .first()
    )
    if row is not None:
        execution = row.flow_execution  # its task name was checked when it was created
    else:
        execution = lock_flow_execution(
            flow_execution_id=data["flow_execution_id"], organization=organization
        )
        check_task_names(definition_of(execution), [(("body", "task_name"), task_name)])
        row = TaskOutput.objects.filter(flow_execution=execution, task_name=task_name).first()
    values: dict[str, Any] = {name: data[name] for name in WORKER_FIELDS if name in data}
    values["modified_by"] = principal.actor_for(data)
    values["flow_version"] = execution.flow_version
    created = row is None
    if row is None:
        row = TaskOutput(
            organization_id=organization.id,
            flow_execution_id=execution.id,
            task_name=task_name,
            **{"status": S.QUEUED, "output": None, "tags": None, **values},
        )
        row.save(force_insert=True)
    else:
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        if not changed:
            return row, False
        for name in changed:
            setattr(row, name, values[name])
        row.save(update_fields=[*changed, "updated_at"])
    with collecting():
        publish_output(CREATED if created else UPDATED, row, flow_id=execution.flow_id)
    return row, created
