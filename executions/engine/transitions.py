"""The one place that changes the status of task executions and flow executions.

Every change is checked against the tables in ``executions.enums``, stamps the timestamps
that go with it, and queues its event in the operation's batch (``events.emit``). Callers
hold the flow execution's row lock (``state.lock_flow_execution``), except the claim and
heartbeat paths, which are conditional updates whose row counts are checked.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import connection
from django.utils import timezone

from executions.engine import observe, rows, wakeup
from executions.engine.events import emit, flow_status_event, task_event
from executions.enums import (
    FLOW_EXECUTION_TERMINAL,
    FLOW_EXECUTION_TRANSITIONS,
    TASK_EDIT_TARGETS,
    TASK_EXECUTION_TRANSITIONS,
    TASK_TERMINAL,
    FlowExecutionStatus,
    StaleStatus,
    TaskExecutionStatus,
)
from executions.models import FlowExecution, TaskExecution
from flowplatform.exceptions import BadRequest, Conflict

TE = TaskExecutionStatus
FE = FlowExecutionStatus

_UNSET: Any = object()


def lease_seconds() -> int:
    return int(settings.FLOWPLATFORM_LEASE_SECONDS)


def lease_expiry(now: datetime) -> datetime:
    """When a lease taken or extended at ``now`` runs out."""
    return now + timedelta(seconds=lease_seconds())


# -- task executions ------------------------------------------------------------------------


def create_task_executions(tasks: Sequence[TaskExecution], *, flow_id: UUID) -> list[TaskExecution]:
    """Insert new executions (any initial status) and announce them; wakes claimers of
    queued ones after commit."""
    if not tasks:
        return []
    now = timezone.now()
    for task in tasks:
        task.created_at = task.updated_at = now
        if task.status == TE.QUEUED and task.available_at is None:
            task.available_at = now
        if task.status == TE.RUNNING:
            task.started_at, task.lease_expires_at = now, lease_expiry(now)
        if task.status in TASK_TERMINAL:
            task.completed_at = now
    created = rows.insert(tasks)
    emit(*(task_event("created", task, flow_id=flow_id) for task in created))
    observe.task_transitions((task, None, task.status) for task in created)
    wakeup.notify_on_commit(
        (t.organization_id, t.task_executor_name) for t in created if t.status == TE.QUEUED
    )
    return created


def build_task_execution(
    *,
    execution: FlowExecution,
    task_name: str,
    idx: int,
    status: str,
    executor: str,
    max_attempts: int,
    timeout_seconds: float | None,
    actor: str = "system",
    worker_id: str | None = None,
    **values: Any,
) -> TaskExecution:
    """An unsaved execution of ``task_name`` in ``execution`` (see ``create_task_executions``);
    one created ``running`` is leased to ``worker_id``."""
    if status == TE.RUNNING:
        values["lease_owner"] = worker_id
    return TaskExecution(
        id=uuid4(),
        organization_id=execution.organization_id,
        flow_execution_id=execution.id,
        task_name=task_name,
        task_execution_idx=idx,
        status=status,
        task_executor_name=executor,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        modified_by=actor,
        **values,
    )


class StatusChanged(Exception):
    """``change_task_status(..., read_unlocked=True)``: the row's status is no longer the one
    read (a claim took the queued execution meanwhile). Nothing was written or emitted."""


def change_task_status(
    task: TaskExecution,
    to: str,
    *,
    flow_id: UUID,
    actor: str | None = None,
    worker_id: str | None = None,
    output: Any = _UNSET,
    error: Any = _UNSET,
    input: Any = _UNSET,
    read_unlocked: bool = False,
) -> TaskExecution:
    """Move ``task`` to ``to`` (or keep its status and update the given fields).

    Raises ``BadRequest`` for a transition the table does not allow. Sets ``started_at`` and
    the lease when it starts running, ``completed_at`` when it ends, clears the lease when it
    goes back to the queue.

    ``read_unlocked``: ``task`` was read without its row lock (under the flow execution's,
    which every change but a claim holds). A claim only takes queued executions, so when the
    status read was ``queued`` the UPDATE applies only if it still is; else
    ``StatusChanged`` (``task`` is then stale: read it again, locked). Any other status read
    cannot have changed since.
    """
    if to != task.status and to not in TASK_EXECUTION_TRANSITIONS.get(task.status, ()):
        raise BadRequest(f"A task execution cannot go from {task.status!r} to {to!r}.")
    now = timezone.now()
    fields = {"status", "updated_at"}
    for name, value in (("output", output), ("error", error), ("input", input)):
        if value is not _UNSET:
            setattr(task, name, value)
            fields.add(name)
    if actor is not None:
        task.modified_by = actor
        fields.add("modified_by")
    previous = task.status
    if to != previous:
        fields |= _status_stamps(task, to, now=now, worker_id=worker_id)
    task.status = to
    task.updated_at = now
    claimable = read_unlocked and previous == TE.QUEUED
    if not rows.update(task, fields, expect={"status": previous} if claimable else None):
        raise StatusChanged(f"task execution {task.id} is no longer {previous!r}")
    emit(task_event("updated", task, flow_id=flow_id))
    if to != previous:
        observe.task_transitions([(task, previous, to)], worker_id=worker_id)
    if to == TE.QUEUED:
        wakeup.notify_on_commit([(task.organization_id, task.task_executor_name)])
    return task


def _status_stamps(
    task: TaskExecution, to: str, *, now: datetime, worker_id: str | None
) -> set[str]:
    if to == TE.RUNNING:
        task.started_at = task.started_at or now
        task.lease_owner = worker_id or task.lease_owner
        task.lease_expires_at = lease_expiry(now)
        return {"started_at", "lease_owner", "lease_expires_at"}
    if to == TE.QUEUED:
        task.started_at = task.lease_owner = task.lease_expires_at = None
        # A released task keeps its place in line.
        if task.available_at is None or task.available_at > now:
            task.available_at = now
        task.cancel_requested = False
        return {"started_at", "lease_owner", "lease_expires_at", "available_at", "cancel_requested"}
    if to in TASK_TERMINAL:
        task.completed_at = now
        task.lease_expires_at = None
        return {"completed_at", "lease_expires_at"}
    return set()


def edit_task(
    task: TaskExecution,
    *,
    flow_id: UUID,
    actor: str,
    changes: dict[str, Any],
    edited_status: str,
) -> TaskExecution:
    """A person's edit (PUT): the only change allowed to a terminal execution.

    ``changes`` may hold ``status`` (one of ``TASK_EDIT_TARGETS`` or the current status),
    ``output``, ``error`` and ``input``. The edited execution is consistent again: a person
    has vouched for it.
    """
    check_edit(task, changes.get("status"))
    now = timezone.now()
    fields = {"updated_at", "modified_by", "edited_status", "stale_status", "stale_reason"}
    status = changes.get("status", task.status)
    if status != task.status:
        observe.task_transitions([(task, task.status, status)])
        fields |= _status_stamps(task, status, now=now, worker_id=None)
        task.status = status
        fields.add("status")
    for name in ("output", "error", "input"):
        if name in changes:
            setattr(task, name, changes[name])
            fields.add(name)
    task.modified_by = actor
    task.edited_status = edited_status
    task.stale_status = StaleStatus.CONSISTENT
    task.stale_reason = None
    task.updated_at = now
    task.save(update_fields=sorted(fields))
    emit(task_event("updated", task, flow_id=flow_id))
    return task


def check_edit(task: TaskExecution, status: str | None) -> None:
    """``BadRequest`` unless a person may set ``status`` on ``task``."""
    if task.status == TE.DELETED:
        raise BadRequest("A deleted task execution cannot be edited.")
    if status is not None and status != task.status and status not in TASK_EDIT_TARGETS:
        allowed = ", ".join(sorted(TASK_EDIT_TARGETS))
        raise BadRequest(
            f"An edit may set status to {allowed} (or keep {task.status!r}), not {status!r}.",
            details=[{"loc": ["body", "status"], "msg": "Not allowed here.", "type": "invalid"}],
        )


def set_edited_status(tasks: Iterable[TaskExecution], edited_status: str, *, flow_id: UUID) -> None:
    changed = [task for task in tasks if task.edited_status != edited_status]
    if not changed:
        return
    now = timezone.now()
    TaskExecution.objects.filter(id__in=[t.id for t in changed]).update(
        edited_status=edited_status, updated_at=now
    )
    for task in changed:
        task.edited_status, task.updated_at = edited_status, now
    emit(*(task_event("updated", task, flow_id=flow_id) for task in changed))


def mark_tasks_stale(
    tasks: Sequence[TaskExecution], *, flow_id: UUID, reason: dict[str, Any]
) -> None:
    """Flag executions whose inputs are outdated (their status is kept)."""
    if not tasks:
        return
    now = timezone.now()
    TaskExecution.objects.filter(id__in=[t.id for t in tasks]).update(
        stale_status=StaleStatus.STALE, stale_reason=reason, updated_at=now
    )
    for task in tasks:
        task.stale_status, task.stale_reason, task.updated_at = StaleStatus.STALE, reason, now
    emit(*(task_event("stale", task, flow_id=flow_id) for task in tasks))


def cancel_tasks(
    tasks: Sequence[TaskExecution], *, flow_id: UUID, actor: str | None = None
) -> list[TaskExecution]:
    """Cancel the given executions that are still queued or awaiting input.

    Locks them first so a claim committing meanwhile is seen: a task that a worker took in
    the meantime is running and is not cancelled here (ask it with ``request_cancellation``).
    """
    if not tasks:
        return []
    waiting = (TE.QUEUED, TE.AWAITING_INPUT)
    by_id = {t.id: t for t in tasks}
    current = dict(
        TaskExecution.objects.select_for_update()
        .filter(id__in=list(by_id))
        .values_list("id", "status")
    )
    targets = [by_id[pk] for pk, status in current.items() if status in waiting]
    for task in tasks:
        task.status = current.get(task.id, task.status)
    if not targets:
        return []
    now = timezone.now()
    values: dict[str, Any] = {"status": TE.CANCELLED, "completed_at": now, "updated_at": now}
    if actor is not None:
        values["modified_by"] = actor
    TaskExecution.objects.filter(id__in=[t.id for t in targets]).update(**values)
    observe.task_transitions((task, task.status, TE.CANCELLED) for task in targets)
    for task in targets:
        for name, value in values.items():
            setattr(task, name, value)
    emit(*(task_event("updated", task, flow_id=flow_id) for task in targets))
    return targets


def request_cancellation(execution: FlowExecution) -> int:
    """Flag the running executions of ``execution``; heartbeats tell their workers."""
    return TaskExecution.objects.filter(
        flow_execution_id=execution.id, status=TE.RUNNING, cancel_requested=False
    ).update(cancel_requested=True)


def claim(
    picked: tuple[str, list[Any]], *, worker_id: str
) -> list[tuple[TaskExecution, UUID, int]]:
    """Move the queued executions ``picked`` selects (the SQL and parameters of a query of
    their ids, in claim order, locked ``FOR UPDATE SKIP LOCKED`` where the database has row
    locks: concurrent claimers never wait for nor take the same rows; on SQLite the one
    writer runs claims one after another) to ``running`` under a lease for ``worker_id``,
    in one statement; returns each claimed execution with its flow's id and its flow
    execution's version, in claim order.

    The picked rows get the running transition's stamps (``_status_stamps``) and come back
    through ``RETURNING``. Needs the caller's transaction; the events and metrics are the
    caller's (``leases``)."""
    now = timezone.now()
    claimed = TaskExecution(status=TE.QUEUED, updated_at=now, cancel_requested=False)
    names = _status_stamps(claimed, TE.RUNNING, now=now, worker_id=worker_id)
    claimed.status = TE.RUNNING
    names |= {"status", "updated_at", "cancel_requested"}
    fields = [TaskExecution._meta.get_field(name) for name in sorted(names)]
    values = [
        field.get_db_prep_save(getattr(claimed, field.attname), connection) for field in fields
    ]
    pick_sql, pick_params = picked
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(pick_sql, tuple(fields)), [*pick_params, *values])
        found = cursor.fetchall()
    width = len(found[0]) - 2 if found else 0
    tasks = rows.instances(TaskExecution, [row[:width] for row in found])
    flows = [rows.values(FlowExecution, ("flow", "flow_version"), row[width:]) for row in found]
    result = [
        (task, flow["flow"], flow["flow_version"]) for task, flow in zip(tasks, flows, strict=True)
    ]
    result.sort(key=lambda item: (item[0].available_at, item[0].created_at, item[0].id))
    return result


@functools.lru_cache(maxsize=256)
def _claim_sql(pick_sql: str, fields: tuple[Any, ...]) -> str:
    te, fe = rows.table(TaskExecution), rows.table(FlowExecution)
    assignments = ", ".join(f'"{field.column}" = %s' for field in fields)
    returned = ", ".join(f'"{field.column}"' for field in TaskExecution._meta.concrete_fields)
    # No alias for the table: SQLite's RETURNING knows it by its name only.
    return (
        f"WITH picked AS MATERIALIZED ({pick_sql})"
        f" UPDATE {te} SET {assignments}"
        ' WHERE "id" IN (SELECT "id" FROM picked)'
        f" RETURNING {returned},"
        f' (SELECT f."flow_id" FROM {fe} f WHERE f."id" = {te}."flow_execution_id"),'
        f' (SELECT f."flow_version" FROM {fe} f WHERE f."id" = {te}."flow_execution_id")'
    )


# -- flow executions ------------------------------------------------------------------------


def change_flow_status(
    execution: FlowExecution, to: str, *, actor: str | None = None
) -> FlowExecution:
    """Move ``execution`` to ``to``; ``Conflict`` when the table does not allow it.

    Stamps ``started_at`` when it (re)starts running and ``completed_at`` when it ends.
    """
    if to == execution.status:
        return execution
    if to not in FLOW_EXECUTION_TRANSITIONS.get(execution.status, ()):
        raise Conflict(f"A flow execution cannot go from {execution.status!r} to {to!r}.")
    now = timezone.now()
    fields = ["status", "updated_at"]
    if to == FE.RUNNING:
        execution.started_at, execution.completed_at = now, None
        fields += ["started_at", "completed_at"]
    elif to in FLOW_EXECUTION_TERMINAL:
        execution.completed_at = now
        fields.append("completed_at")
    if actor is not None:
        execution.modified_by = actor
        fields.append("modified_by")
    observe.flow_transition(execution, execution.status, to)
    execution.status = to
    execution.updated_at = now
    execution.save(update_fields=fields)
    emit(flow_status_event(execution))
    return execution
