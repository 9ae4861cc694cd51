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
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from executions.engine import observe, outputs, rows, transitions
from executions.engine.events import collecting, emit, engine_operation, task_event
from executions.engine.scheduling import on_task_finished, sync_outputs
from executions.engine.state import Run, lock_flow_execution
from executions.enums import FLOW_EXECUTION_ACTIVE, FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from executions.representations import task_execution_data
from executions.selectors import flow_executions_of
from flowplatform.exceptions import Conflict, NotFound
from flowplatform.models import Organization
from flowplatform.representation import iso

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
    in ``executors``, oldest first: each becomes ``running`` under a lease for ``worker_id``
    (``transitions.claim``), its output ``running`` too. Returns them as the claim endpoint
    renders them.

    An idle poll finds nothing with a plain read and locks nothing (on SQLite a transaction
    takes the one write lock at BEGIN). ``with_report``: right after a worker's report,
    which usually queued work: no lease sweep (it locks other flow executions) and no read
    first."""
    if not executors:
        return []
    values = {"organization": organization.pk, "executors": list(executors), "now": timezone.now()}
    if not with_report:
        sweep_if_due(organization=organization)
        exists = _claimable_sql(len(executors), None)
        with connection.cursor() as cursor:
            cursor.execute(exists.sql, exists.params_for(**values))
            if cursor.fetchone() is None:
                return []
    # Nested in a caller's transaction (claims after reports), a failed claim fails it.
    with transaction.atomic(savepoint=False), collecting():
        pick = _claimable_sql(len(executors), limit)
        claimed = transitions.claim((pick.sql, pick.params_for(**values)), worker_id=worker_id)
        observe.tasks_claimed([task for task, _, _ in claimed], worker_id=worker_id)
        by_execution: dict[UUID, list[TaskExecution]] = defaultdict(list)
        for task, flow_id, _ in claimed:
            emit(task_event("updated", task, flow_id=flow_id))
            by_execution[task.flow_execution_id].append(task)
        # Outputs follow their executions: running now (workers need not post it).
        versions = {task.flow_execution_id: (f, v) for task, f, v in claimed}
        for flow_execution_id, tasks in by_execution.items():
            flow_id, flow_version = versions[flow_execution_id]
            outputs.sync_outputs(tasks, flow_id=flow_id, flow_version=flow_version, create=False)
    return [_claimed(task, flow_id) for task, flow_id, _ in claimed]


def claimable(
    *, organization: Organization | UUID, executors: Sequence[str], now: datetime
) -> QuerySet[TaskExecution]:
    """What a claim takes, in the order it takes it: queued executions due at ``now`` of
    running flow executions whose executor is one of ``executors``, oldest first."""
    return TaskExecution.objects.filter(
        organization=organization,
        status=TE.QUEUED,
        task_executor_name__in=list(executors),
        available_at__lte=now,
        flow_execution__status__in=sorted(FLOW_EXECUTION_ACTIVE),
    ).order_by("available_at", "created_at", "id")


@functools.lru_cache(maxsize=256)
def _claimable_sql(executor_count: int, limit: int | None) -> rows.Compiled:
    """``claimable`` compiled once per number of executors: the ids of up to ``limit``
    executions, locked for a claim, or (no limit) whether there is one at all."""

    def build(*, organization: UUID, executors: list[str], now: datetime) -> QuerySet:
        candidates = claimable(organization=organization, executors=executors, now=now)
        if limit is None:
            return candidates.values("id")[:1]
        return candidates.select_for_update(skip_locked=True, of=("self",)).values("id")[:limit]

    fields = {
        "organization": "organization",
        "executors": "task_executor_name",
        "now": "available_at",
    }
    return rows.Compiled(TaskExecution, build, fields, sizes={"executors": executor_count})


def _claimed(task: TaskExecution, flow_id: UUID) -> dict[str, Any]:
    item = task_execution_data(task)
    item.update(
        lease_expires_at=iso(task.lease_expires_at),
        lease_seconds=transitions.lease_seconds(),
        timeout_seconds=task.timeout_seconds,
        flow_id=str(flow_id),
    )
    return item


def heartbeat_task_execution(
    *, organization: Organization, task_execution_id: UUID, worker_id: str
) -> dict[str, Any]:
    """Extend the lease ``worker_id`` holds; answers ``{lease_expires_at, cancel_requested}``.

    One conditional UPDATE (running, same ``lease_owner``); ``Conflict`` when the task is no
    longer this worker's (finished, expired and retried, released, edited by a person).
    """
    expires = transitions.lease_expiry(timezone.now())
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
    # A deleted flow execution's expired leases end too: its tasks must not stay running.
    organization_id = (
        FlowExecution.objects.filter(id=flow_execution_id)
        .values_list("organization_id", flat=True)
        .first()
    )
    execution = (
        flow_executions_of(organization=organization_id, include_deleted=True)
        .select_for_update(no_key=True)
        .filter(id=flow_execution_id)
        .first()
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
