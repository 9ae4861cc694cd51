"""Task outputs: kept in step with task executions, and set explicitly by workers.

Locking. The engine writes outputs inside its own transaction, holding the flow execution's
row lock (``engine.lock_flow_execution``); the functions it calls take no further locks and
touch only ``TaskOutput`` rows of that flow execution. Every *insert* of an output holds the
flow execution's lock too (``create_or_update_task_output`` takes it when the output does not
exist yet), so the engine's bulk inserts cannot race another insert. A worker's
``POST /task-outputs`` that updates an existing output takes only that output's row lock (one
row: it cannot deadlock with anyone), so it never waits for the engine's decisions about the
other tasks of the flow execution. Each change publishes ``task_output.created`` /
``task_output.updated`` through the outbox (in the engine's event batch when there is one);
nothing is pushed before commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from executions.enums import FlowExecutionStatus, StaleStatus, TaskExecutionStatus
from executions.enums import TaskOutputStatus as S
from executions.models import FlowExecution, TaskExecution
from flowplatform.exceptions import BadRequest, Forbidden, NotFound
from flowplatform.principal import Principal
from outputs.models import TaskOutput
from outputs.representations import task_output_data, task_output_data_sql
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
    values = _execution_values(task_execution, flow_version)
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
        _publish([_event(event, row, flow_id=flow_id)])
    return row


def _execution_values(task_execution: TaskExecution, flow_version: int | None) -> dict[str, Any]:
    stale = task_execution.stale_status == StaleStatus.STALE
    return {
        "status": S.STALE if stale else OUTPUT_STATUS_FOR_EXECUTION[task_execution.status],
        "output": task_execution.output,
        "edited_status": task_execution.edited_status,
        "stale_status": task_execution.stale_status,
        "modified_by": task_execution.modified_by,
        "flow_version": flow_version,
    }


@transaction.atomic(savepoint=False)
def sync_outputs_from_executions(
    *,
    task_executions: Sequence[TaskExecution],
    flow_id: UUID,
    flow_version: int | None,
    known: dict[str, TaskOutput | None] | None = None,
    prefetch: Iterable[str] = (),
) -> list[TaskOutput]:
    """``sync_output_from_execution`` for several latest executions of one flow execution.

    ``known`` caches this transaction's outputs by task name (``None``: the task has none); it
    is read first and kept up to date, so an engine operation loads each output once. Outputs
    not known are loaded in one SELECT, together with those of ``prefetch`` (tasks the caller
    expects to sync next). Writes: one bulk INSERT for the missing outputs (the caller holds
    the flow execution's lock, which every output insert holds: no savepoint needed), one
    UPDATE per distinct change (outputs changing the same way share it), and the events go
    to the engine's batch. Returns the outputs.
    """
    if not task_executions:
        return []
    by_name = {task.task_name: task for task in task_executions}
    first = task_executions[0]
    cache: dict[str, TaskOutput | None] = {} if known is None else known
    wanted = {*by_name, *prefetch} - cache.keys()
    if wanted & by_name.keys():
        found = {row.task_name: row for row in _outputs_named(first.flow_execution_id, wanted)}
        cache.update({name: found.get(name) for name in wanted})
    inserts: list[TaskOutput] = []
    updates: dict[str, tuple[dict[str, Any], list[TaskOutput]]] = {}
    for name, task in by_name.items():
        values = _execution_values(task, flow_version)
        row = cache.get(name)
        if row is None:
            row = TaskOutput(
                organization_id=task.organization_id,
                flow_execution_id=task.flow_execution_id,
                task_name=name,
                summary=None,
                **values,
            )
            inserts.append(row)
            cache[name] = row
            continue
        changed = {key: value for key, value in values.items() if getattr(row, key) != value}
        if changed:
            # Outputs that change the same way (e.g. tasks queued again) share one UPDATE.
            key = json.dumps(changed, sort_keys=True, default=str)
            updates.setdefault(key, (changed, []))[1].append(row)
    from executions.engine import rows as engine_rows

    now = timezone.now()
    for changed, rows in updates.values():
        for row in rows:
            for key, value in changed.items():
                setattr(row, key, value)
            row.updated_at = now
        if len(rows) == 1:  # a worker's report: one UPDATE, without building the ORM's
            engine_rows.update(rows[0], [*changed, "updated_at"])
        else:
            TaskOutput.objects.filter(pk__in=[row.pk for row in rows]).update(
                **changed, updated_at=now
            )
    if inserts:
        engine_rows.insert(inserts)  # bulk_create, without building the ORM's INSERT
    events = [_event(UPDATED, row, flow_id=flow_id) for _, rows in updates.values() for row in rows]
    events.extend(_event(CREATED, row, flow_id=flow_id) for row in inserts)
    _publish(events)
    return [row for name in by_name if (row := cache[name]) is not None]


def load_outputs(
    *, flow_execution_id: UUID, task_names: Iterable[str], known: dict[str, TaskOutput | None]
) -> None:
    """Fill ``known`` (``sync_outputs_from_executions``'s cache) with the outputs of
    ``task_names`` it lacks, in one query: for an operation that will sync several."""
    wanted = set(task_names) - known.keys()
    if wanted:
        found = {row.task_name: row for row in _outputs_named(flow_execution_id, wanted)}
        known.update({name: found.get(name) for name in wanted})


def load_outputs_of(
    wanted: Sequence[tuple[UUID, Iterable[str], dict[str, TaskOutput | None]]],
) -> None:
    """``load_outputs`` for several flow executions (each ``(id, task names, known)``), in
    one query on PostgreSQL."""
    from executions.engine import rows

    missing = [(pk, set(names) - known.keys(), known) for pk, names, known in wanted]
    missing = [(pk, names, known) for pk, names, known in missing if names]
    if not missing:
        return
    if connection.vendor != "postgresql" or len(missing) == 1:
        for pk, names, known in missing:
            load_outputs(flow_execution_id=pk, task_names=names, known=known)
        return
    pairs = sorted((str(pk), name) for pk, names, _ in missing for name in names)
    sql = (
        'WHERE (t."flow_execution_id", t."task_name") IN'
        " (SELECT * FROM unnest(%s::uuid[], %s::text[]))"
    )
    found = {
        (row.flow_execution_id, row.task_name): row
        for row in rows.select(TaskOutput, sql, [[f for f, _ in pairs], [n for _, n in pairs]])
    }
    for pk, names, known in missing:
        known.update({name: found.get((pk, name)) for name in names})


def _outputs_named(flow_execution_id: UUID, task_names: set[str]) -> list[TaskOutput]:
    """Every output (soft-deleted ones too) of ``task_names`` in the flow execution. Every
    engine operation reads its outputs here: the query is written once as SQL."""
    from executions.engine import rows

    if not task_names:
        return []
    sql = 'WHERE t."flow_execution_id" = %s'
    params: list[Any] = [rows.db_value(TaskOutput, "flow_execution_id", flow_execution_id)]
    if len(task_names) <= 500:
        ordered = sorted(task_names)
        sql += f' AND t."task_name" IN ({rows.placeholders(len(ordered))})'
        params += ordered
    return [row for row in rows.select(TaskOutput, sql, params) if row.task_name in task_names]


@transaction.atomic(savepoint=False)
def mark_outputs_running(*, claimed: Sequence[Mapping[str, Any]]) -> None:
    """Claimed task executions (``.values()`` rows with ``flow_execution_id``, ``task_name``,
    ``stale_status`` and ``flow_execution__flow_id``) are running: their outputs follow
    (``running``, or ``stale`` for a stale one), as the worker's ``running`` status used to
    make them. Outputs missing or soft-deleted are left alone.

    Runs in the claim's transaction, which holds the claimed task executions' row locks (and
    no flow execution lock): the engine locks a task's execution before writing its output,
    so this cannot deadlock with it. Queries: one SELECT, one UPDATE per new status, the
    events in the claim's batch.
    """
    if not claimed:
        return
    wanted: dict[tuple[UUID, str], tuple[str, UUID]] = {
        (row["flow_execution_id"], row["task_name"]): (
            S.STALE if row["stale_status"] == StaleStatus.STALE else S.RUNNING,
            row["flow_execution__flow_id"],
        )
        for row in claimed
    }
    match = Q()
    for flow_execution_id, task_name in wanted:
        match |= Q(flow_execution_id=flow_execution_id, task_name=task_name)
    rows = TaskOutput.objects.filter(match).exclude(status=S.DELETED).order_by()
    changed = [r for r in rows if r.status != wanted[(r.flow_execution_id, r.task_name)][0]]
    if not changed:
        return
    now = timezone.now()
    by_status: dict[str, list[TaskOutput]] = {}
    for row in changed:
        row.status, row.updated_at = wanted[(row.flow_execution_id, row.task_name)][0], now
        by_status.setdefault(row.status, []).append(row)
    for status, group in by_status.items():
        _bulk_update(group, status=status, updated_at=now)
    _publish(
        [
            _event(UPDATED, row, flow_id=wanted[(row.flow_execution_id, row.task_name)][1])
            for row in changed
        ]
    )


@transaction.atomic(savepoint=False)
def mark_outputs_stale(
    *, flow_execution: FlowExecution, task_names: Iterable[str], flow_id: UUID
) -> list[str]:
    """Mark the existing outputs of ``task_names`` stale (``status`` and ``stale_status``).

    Tasks without an output are skipped (nothing displayable to invalidate); outputs already
    stale or soft-deleted are left alone. The caller holds the flow execution's row lock.
    Each changed output is published as ``task_output.updated``, in task name order, in
    this transaction. Returns the task names of the outputs it changed, in that order.

    Queries: on PostgreSQL one statement (the UPDATE renders the events' data and feeds the
    outbox insert: nothing is loaded into Python, whatever the number of outputs);
    elsewhere one SELECT, one UPDATE per 500 changed outputs, one outbox insert.
    """
    names = sorted(set(task_names))
    if not names:
        return []
    if connection.vendor == "postgresql":
        return _mark_outputs_stale_postgresql(flow_execution, names, flow_id=flow_id)
    rows = _outputs_of(flow_execution=flow_execution, task_names=set(names))
    changed = [row for row in rows if _stale_change(row.status, row.stale_status)]
    if not changed:
        return []
    now = timezone.now()
    for row in changed:
        row.status, row.stale_status, row.updated_at = S.STALE, StaleStatus.STALE, now
    _bulk_update(changed, status=S.STALE, stale_status=StaleStatus.STALE, updated_at=now)
    _publish([_event(UPDATED, row, flow_id=flow_id) for row in changed])
    return [row.task_name for row in changed]


def _stale_change(status: str, stale_status: str) -> bool:
    """Whether marking an output with these values stale changes it."""
    return status != S.DELETED and (status != S.STALE or stale_status != StaleStatus.STALE)


_MARK_STALE_CTES = """
marked AS (
    UPDATE {table} AS o
    SET status = %(stale)s, stale_status = %(stale_status)s, updated_at = %(now)s
    WHERE o.flow_execution_id = %(flow_execution_id)s
        AND o.task_name = ANY(%(names)s::text[])
        AND o.status <> %(deleted)s
        AND (o.status <> %(stale)s OR o.stale_status <> %(stale_status)s)
    RETURNING o.organization_id, o.flow_execution_id, o.task_name, {data} AS data
)"""
_MARK_STALE_SELECT = (
    "SELECT %(event_type)s::text AS type, organization_id, %(flow_id)s::uuid AS flow_id,"
    " flow_execution_id, task_name, data, task_name AS ord FROM marked"
)


def _mark_outputs_stale_postgresql(
    flow_execution: FlowExecution, names: list[str], *, flow_id: UUID
) -> list[str]:
    from executions.engine.events import emit_query

    ctes = _MARK_STALE_CTES.format(
        table=connection.ops.quote_name(TaskOutput._meta.db_table),
        data=task_output_data_sql("o"),
    )
    messages = emit_query(
        ctes=ctes,
        select=_MARK_STALE_SELECT,
        params={
            "stale": S.STALE,
            "stale_status": StaleStatus.STALE,
            "deleted": S.DELETED,
            "now": timezone.now(),
            "flow_execution_id": flow_execution.pk,
            # An array constant: PostgreSQL hashes it, where ``IN (SELECT …)`` of a JSON
            # array, under a low row estimate, was re-read for every output (O(n²): 226 of
            # 263 ms for 1,000 outputs).
            "names": list(names),
            "event_type": UPDATED,
            "flow_id": flow_id,
        },
    )
    return [message["task_name"] for message in messages]


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
    _publish([_event(UPDATED, row, flow_id=flow_id) for row in changed])


def outputs_changed_by(
    *, flow_execution_id: UUID, statuses: Sequence[tuple[str, str | None]]
) -> set[str]:
    """The tasks whose output ``apply_task_statuses`` would change now (one SELECT, no
    lock): a worker's status history mostly repeats what its reports already set."""
    wanted = {name: status for name, status in statuses if status in VALID_OUTPUT_STATUSES}
    if not wanted:
        return set()
    current = (
        TaskOutput.objects.filter(flow_execution_id=flow_execution_id, task_name__in=list(wanted))
        .exclude(status=S.DELETED)
        .values_list("task_name", "status")
    )
    return {name for name, status in current if status != wanted[name]}


# The outputs' part of the task-status batch's statement (PostgreSQL): ``{items}`` is a CTE
# of the batch (``task_name``, ``status``, ``n``: position). Each task's last valid status
# is applied to its output when it changes it (soft-deleted outputs stay deleted), and each
# changed output becomes a ``task_output.updated`` event, in task name order after the
# batch's own events (``ord`` above ``{after}``), as ``apply_task_statuses`` does.
_TASK_STATUSES_CTES = """
wanted AS (
    SELECT DISTINCT ON (task_name) task_name, status FROM {items}
    WHERE status IN (SELECT jsonb_array_elements_text(%(output_valid)s::jsonb))
    ORDER BY task_name, n DESC
),
output_changed AS (
    UPDATE {table} AS o SET status = wanted.status, updated_at = %(output_now)s
    FROM wanted
    WHERE o.flow_execution_id = %(flow_execution_id)s AND o.task_name = wanted.task_name
        AND o.status <> %(output_deleted)s AND o.status <> wanted.status
    RETURNING o.organization_id, o.flow_execution_id, o.task_name, {data} AS data
)"""
_TASK_STATUSES_SELECT = """
SELECT %(output_updated)s::text, organization_id, %(flow_id)s::uuid, flow_execution_id,
    task_name, data, {after} + row_number() OVER (ORDER BY task_name)
FROM output_changed"""


def task_statuses_outputs_query(*, items: str, after: int) -> tuple[str, str, dict[str, Any]]:
    """PostgreSQL: ``apply_task_statuses`` as part of the statement that writes a status
    batch: ``(ctes, select, params)``. The statement's params must also name
    ``flow_execution_id`` and ``flow_id``; ``select`` yields the events' columns (see
    ``realtime.publisher.publish_query``). The caller holds the lock ``apply_task_statuses``
    asks for."""
    ctes = _TASK_STATUSES_CTES.format(
        items=items,
        table=connection.ops.quote_name(TaskOutput._meta.db_table),
        data=task_output_data_sql("o"),
    )
    params = {
        "output_valid": json.dumps(sorted(VALID_OUTPUT_STATUSES)),
        "output_now": timezone.now(),
        "output_deleted": S.DELETED,
        "output_updated": UPDATED,
    }
    return ctes, _TASK_STATUSES_SELECT.format(after=int(after)), params


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

    Locks: an existing output is updated under its own row lock only (the hot path: a worker
    reporting its task's summary, which must not queue behind the engine's decisions about
    the flow execution). Creating one takes the flow execution's row lock first, like every
    output insert (the engine's included), so two inserts of one task's output never race.
    """
    organization = principal.organization
    body_org = data.get("organization_id")
    if body_org is not None and body_org != organization.id:
        raise Forbidden("organization_id does not match the caller's organization.")
    task_name = data["task_name"]
    row = (
        TaskOutput.objects.select_for_update(of=("self",))
        .select_related("flow_execution")
        .filter(
            flow_execution_id=flow_execution_id,
            flow_execution__organization_id=organization.id,
            task_name=task_name,
        )
        .exclude(flow_execution__status=FlowExecutionStatus.DELETED)
        .order_by()
        .first()
    )
    if row is not None:
        execution = row.flow_execution  # its task name was checked when it was created
    else:
        execution = _lock_flow_execution(organization_id=organization.id, pk=flow_execution_id)
        _check_task_name(execution, task_name)
        row = _current_output(flow_execution_id=execution.id, task_name=task_name)

    actor = principal.actor
    if principal.is_service and data.get("modified_by"):
        actor = data["modified_by"]
    values: dict[str, Any] = {k: data[k] for k in WORKER_FIELDS if k in data}
    values["modified_by"] = actor
    values["flow_version"] = execution.flow_version

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
        _publish([_event(event, row, flow_id=execution.flow_id)])
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


def _publish(events: Sequence[EventSpec]) -> None:
    """Into the engine's event batch when an engine operation runs (one outbox insert for
    the whole operation), else published at once."""
    from executions.engine.events import emit

    if events:
        emit(*events)


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
        FlowExecution.objects.select_for_update(no_key=True)
        .filter(pk=pk, organization_id=organization_id)
        .exclude(status=FlowExecutionStatus.DELETED)
        .only("id", "organization_id", "flow_id", "flow_version", "status")
        .first()
    )
    if execution is None:
        raise NotFound("Flow execution not found.")
    return execution


def _check_task_name(execution: FlowExecution, task_name: str) -> None:
    """400 for a task the execution's flow version does not define (DESIGN §4). The parsed
    definition comes from the engine's per-process cache."""
    from executions.engine.definitions import get_definition

    try:
        definition = get_definition(flow_id=execution.flow_id, version=execution.flow_version)
    except BadRequest:
        return  # no readable definition to check against
    if task_name not in definition.names:
        raise BadRequest(
            f"Unknown task name {task_name!r} for this flow execution's flow version.",
            details=[{"loc": ["body", "task_name"], "msg": "Unknown task.", "type": "unknown"}],
        )
