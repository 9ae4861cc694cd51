"""The worker protocol: claims, leases, heartbeats, releases and expired leases.

A claimed task execution is ``running`` under a lease (``lease_owner``, ``lease_expires_at``)
that heartbeats extend. A lease that runs out fails its task with ``LeaseExpired`` and the
retry policy applies; the worker that lost it gets 409 for anything it sends afterwards.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from executions.engine import observe, rows, transitions
from executions.engine.events import collecting, emit, engine_operation, task_event
from executions.engine.scheduling import on_task_finished, sync_outputs
from executions.engine.state import Run, lock_flow_execution
from executions.enums import (
    FLOW_EXECUTION_ACTIVE,
    FlowExecutionStatus,
    StaleStatus,
    TaskExecutionStatus,
    TaskOutputStatus,
)
from executions.models import FlowExecution, TaskExecution
from executions.services.task_execution_queries import ROW_FIELDS, row_data
from flowplatform.exceptions import Conflict, NotFound
from flowplatform.models import Organization
from flowplatform.representation import iso
from outputs import services as outputs
from outputs.models import TaskOutput
from outputs.representations import task_output_data
from realtime.publisher import EventSpec

TE = TaskExecutionStatus
FE = FlowExecutionStatus
LEASE_EXPIRED = "LeaseExpired"
# Claims sweep their organization's expired leases at most this often (per process).
SWEEP_INTERVAL_SECONDS = 1.0

_sweep_lock = threading.Lock()
_last_sweep: dict[str, float] = {}


def claim_task_executions(
    *,
    organization: Organization,
    worker_id: str,
    executors: Sequence[str],
    limit: int,
    with_report: bool = False,
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` queued, due task executions of ``organization`` whose executor is
    in ``executors``, oldest first: each becomes ``running`` under a lease for ``worker_id``.
    Returns them as the claim endpoint renders them.

    ``with_report``: in the transaction of a worker's report, which holds its flow
    execution's lock and usually just queued work: no lease sweep (it locks other flow
    executions) and no probe for an empty queue first."""
    if not with_report:
        sweep_if_due(organization=organization)
    if connection.vendor == "postgresql":
        return _claim_postgresql(
            organization, worker_id, list(executors), limit, probe=not with_report
        )
    candidates = TaskExecution.objects.filter(
        organization=organization,
        status=TE.QUEUED,
        task_executor_name__in=list(executors),
        available_at__lte=timezone.now(),
        flow_execution__status__in=FLOW_EXECUTION_ACTIVE,
    ).order_by("available_at", "created_at", "id")
    if not candidates.exists():
        # A read outside any transaction: idle polls never take a write lock (on SQLite a
        # transaction takes the database's one write lock at BEGIN).
        return []
    with transaction.atomic(), collecting():
        ids = transitions.claim(candidates, limit=limit, worker_id=worker_id)
        if not ids:
            return []
        claimed_rows = list(
            TaskExecution.objects.filter(id__in=ids)
            .order_by("available_at", "created_at", "id")
            .values(*CLAIMED_FIELDS)
        )
        return _hand_out(claimed_rows, worker_id)


# What a claim reads back about each claimed execution (``flow_execution__flow_id`` last).
CLAIMED_FIELDS = (
    *ROW_FIELDS,
    "lease_expires_at",
    "timeout_seconds",
    "available_at",
    "flow_execution__flow_id",
)


def _hand_out(claimed_rows: list[dict[str, Any]], worker_id: str) -> list[dict[str, Any]]:
    """In the claim's transaction: the events, metrics and outputs of the claimed rows
    (in claim order), and their rendering for the worker."""
    claimed = [_claimed(row) for row in claimed_rows]
    observe.tasks_claimed(claimed_rows, worker_id=worker_id)
    for row, item in zip(claimed_rows, claimed, strict=True):
        emit(_claim_event(row, item))
    # Outputs follow their executions: running now (workers need not post it).
    if connection.vendor == "postgresql":
        _outputs_running_postgresql(claimed_rows)
    else:
        outputs.mark_outputs_running(claimed=claimed_rows)
    return claimed


def _outputs_running_postgresql(claimed_rows: list[dict[str, Any]]) -> None:
    """``outputs.mark_outputs_running`` in one ``UPDATE … RETURNING`` per new status (one in
    practice): outputs of the claimed executions become ``running`` (``stale`` for a stale
    one); soft-deleted outputs and those already there are left alone."""
    wanted: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in claimed_rows:
        stale = row["stale_status"] == StaleStatus.STALE
        wanted[TaskOutputStatus.STALE if stale else TaskOutputStatus.RUNNING].append(row)
    flow_ids = {row["flow_execution_id"]: row["flow_execution__flow_id"] for row in claimed_rows}
    now = timezone.now()
    col = functools.partial(rows.column, TaskOutput)
    for status, group in wanted.items():
        sql = (
            f"UPDATE {rows.table(TaskOutput)} t SET {col('status')} = %s,"
            f" {col('updated_at')} = %s"
            f" WHERE (t.{col('flow_execution')}, t.{col('task_name')}) IN"
            f" ({', '.join(['(%s::uuid, %s)'] * len(group))})"
            f" AND t.{col('status')} NOT IN (%s, %s)"
            f" RETURNING {rows.columns(TaskOutput)}"
        )
        params: list[Any] = [status, now]
        for row in group:
            params += [row["flow_execution_id"], row["task_name"]]
        params += [TaskOutputStatus.DELETED, status]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            changed = rows.instances(TaskOutput, cursor.fetchall())
        emit(
            *(
                EventSpec(
                    type=outputs.UPDATED,
                    organization_id=output.organization_id,
                    flow_id=flow_ids[output.flow_execution_id],
                    flow_execution_id=output.flow_execution_id,
                    task_name=output.task_name,
                    data=task_output_data(output),
                )
                for output in changed
            )
        )


@functools.cache
def _claim_statements(executor_count: int) -> tuple[str, str]:
    """PostgreSQL: whether a claimable execution exists (a plain read, so idle polls lock
    nothing), and the claim itself: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE OF t
    SKIP LOCKED) RETURNING``, so concurrent claimers never wait for or take the same rows."""
    te, fe = rows.table(TaskExecution), rows.table(FlowExecution)
    col = functools.partial(rows.column, TaskExecution)
    active = ", ".join(f"'{status}'" for status in sorted(FLOW_EXECUTION_ACTIVE))
    where = (
        f'FROM {te} t JOIN {fe} f ON f."id" = t.{col("flow_execution")}'
        f" WHERE t.{col('organization')} = %s AND t.{col('status')} = '{TE.QUEUED}'"
        f" AND t.{col('task_executor_name')} IN ({rows.placeholders(executor_count)})"
        f' AND t.{col("available_at")} <= %s AND f."status" IN ({active})'
    )
    exists = f"SELECT 1 {where} LIMIT 1"
    returned = ", ".join(
        f"u.{col(name)}" for name in CLAIMED_FIELDS if name != "flow_execution__flow_id"
    )
    # A materialized CTE picks the rows once: as a subquery of ``IN`` it could be run again
    # and hand out more than ``limit``.
    claim = (
        f'WITH picked AS MATERIALIZED (SELECT t."id", f."flow_id" {where}'
        f' ORDER BY t.{col("available_at")}, t.{col("created_at")}, t."id" LIMIT %s'
        f" FOR UPDATE OF t SKIP LOCKED)"
        f" UPDATE {te} u SET {col('status')} = '{TE.RUNNING}', {col('started_at')} = %s,"
        f" {col('updated_at')} = %s, {col('lease_owner')} = %s,"
        f" {col('lease_expires_at')} = %s, {col('cancel_requested')} = false"
        f' FROM picked WHERE u."id" = picked."id"'
        f' RETURNING {returned}, picked."flow_id"'
    )
    return exists, claim


def _claim_postgresql(
    organization: Organization, worker_id: str, executors: list[str], limit: int, *, probe: bool
) -> list[dict[str, Any]]:
    if not executors:
        return []
    exists, claim = _claim_statements(len(executors))
    now = timezone.now()
    where = [organization.pk, *executors, now]
    if probe:
        with connection.cursor() as cursor:
            cursor.execute(exists, where)
            if cursor.fetchone() is None:
                return []
    expires = now + timedelta(seconds=transitions.lease_seconds())
    # Nested in a caller's transaction (a report's), a failed claim fails the caller too.
    with transaction.atomic(savepoint=False), collecting():
        with connection.cursor() as cursor:
            cursor.execute(claim, [*where, limit, now, now, worker_id, expires])
            found = cursor.fetchall()
        if not found:
            return []
        own = CLAIMED_FIELDS[:-1]
        claimed_rows = []
        for row in found:
            values = rows.values(TaskExecution, own, row[:-1])
            values.update(rows.values(FlowExecution, ("flow",), row[-1:]))
            values["flow_execution__flow_id"] = values.pop("flow")
            claimed_rows.append(values)
        claimed_rows.sort(key=lambda r: (r["available_at"], r["created_at"], r["id"]))
        return _hand_out(claimed_rows, worker_id)


def _claimed(row: dict[str, Any]) -> dict[str, Any]:
    item = row_data(row)
    item.update(
        lease_expires_at=iso(row["lease_expires_at"]),
        lease_seconds=transitions.lease_seconds(),
        timeout_seconds=row["timeout_seconds"],
        flow_id=str(row["flow_execution__flow_id"]),
    )
    return item


def _claim_event(row: dict[str, Any], item: dict[str, Any]) -> Any:
    task = TaskExecution(
        organization_id=row["organization_id"],
        flow_execution_id=row["flow_execution_id"],
        task_name=row["task_name"],
    )
    data = {name: item[name] for name in ROW_FIELDS}
    return task_event("updated", task, flow_id=row["flow_execution__flow_id"], data=data)


def heartbeat_task_execution(
    *, organization: Organization, task_execution_id: UUID, worker_id: str
) -> dict[str, Any]:
    """Extend the lease ``worker_id`` holds; answers ``{lease_expires_at, cancel_requested}``.

    One conditional UPDATE (running, same ``lease_owner``); ``Conflict`` when the task is no
    longer this worker's (finished, expired and retried, released, edited by a person).
    """
    expires = timezone.now() + timedelta(seconds=transitions.lease_seconds())
    updated = TaskExecution.objects.filter(
        id=task_execution_id, organization=organization, status=TE.RUNNING, lease_owner=worker_id
    ).update(lease_expires_at=expires)
    if updated != 1:
        if not TaskExecution.objects.filter(
            id=task_execution_id, organization=organization
        ).exists():
            raise NotFound(f"Task execution {task_execution_id} not found.")
        raise Conflict("This worker no longer holds the task execution's lease.")
    cancel = (
        TaskExecution.objects.filter(id=task_execution_id)
        .values_list("cancel_requested", flat=True)
        .get()
    )
    return {"lease_expires_at": iso(expires), "cancel_requested": cancel}


@engine_operation
def release_task_execution(
    *, organization: Organization, task_execution_id: UUID, worker_id: str
) -> TaskExecution:
    """Give a claimed task back to the queue without using up an attempt (a worker shutting
    down). When its flow execution is no longer running, the task is cancelled instead."""
    run, task = _lock_task(organization=organization, task_execution_id=task_execution_id)
    if task.status != TE.RUNNING or task.lease_owner != worker_id:
        raise Conflict("This worker does not hold the task execution's lease.")
    if run.execution.status == FE.RUNNING and not task.cancel_requested:
        transitions.change_task_status(task, TE.QUEUED, flow_id=run.flow_id)
        sync_outputs(run, [task])
        return task
    transitions.change_task_status(task, TE.CANCELLED, flow_id=run.flow_id)
    sync_outputs(run, [task])
    on_task_finished(run, task)
    return task


def _lock_task(*, organization: Organization, task_execution_id: UUID) -> tuple[Run, TaskExecution]:
    flow_execution_id = (
        TaskExecution.objects.filter(id=task_execution_id, organization=organization)
        .values_list("flow_execution_id", flat=True)
        .first()
    )
    if flow_execution_id is None:
        raise NotFound(f"Task execution {task_execution_id} not found.")
    execution = lock_flow_execution(flow_execution_id=flow_execution_id, organization=organization)
    task = TaskExecution.objects.select_for_update().get(id=task_execution_id)
    return Run.of(execution), task


# -- expired leases ---------------------------------------------------------------------------


def sweep_if_due(*, organization: Organization) -> int:
    key = str(organization.id)
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep.get(key, 0.0) < SWEEP_INTERVAL_SECONDS:
            return 0
        _last_sweep[key] = now
    return sweep_expired_leases(organization=organization)


def sweep_expired_leases(*, organization: Organization | None = None, limit: int = 500) -> int:
    """Fail running task executions whose lease has expired (``LeaseExpired``) and apply the
    retry policy; one transaction per flow execution. Returns how many were expired."""
    qs = TaskExecution.objects.filter(status=TE.RUNNING, lease_expires_at__lt=timezone.now())
    if organization is not None:
        qs = qs.filter(organization=organization)
    by_flow: dict[UUID, list[UUID]] = defaultdict(list)
    for flow_execution_id, pk in qs.values_list("flow_execution_id", "id")[:limit]:
        by_flow[flow_execution_id].append(pk)
    return sum(_expire(flow_execution_id, ids) for flow_execution_id, ids in by_flow.items())


@engine_operation
def _expire(flow_execution_id: UUID, ids: list[UUID]) -> int:
    execution = (
        FlowExecution.objects.select_for_update(no_key=True).filter(id=flow_execution_id).first()
    )
    if execution is None:
        return 0
    run = Run.of(execution)
    now = timezone.now()
    expired = TaskExecution.objects.select_for_update().filter(
        id__in=ids, status=TE.RUNNING, lease_expires_at__lt=now
    )
    count = 0
    for task in expired.order_by("created_at"):
        error = {
            "message": f"The lease held by {task.lease_owner!r} expired at "
            f"{iso(task.lease_expires_at)} without a report.",
            "type": LEASE_EXPIRED,
            "traceback": "",
        }
        transitions.change_task_status(task, TE.FAILED, flow_id=run.flow_id, error=error)
        count += 1
        if run.is_latest(task):
            run.record(task)
            sync_outputs(run, [task])
            on_task_finished(run, task)
    observe.leases_expired(count)
    return count
