"""What operators see of the engine: one log line and one counter per status change.

``transitions`` (the one place that changes statuses) and ``leases`` report here. Nothing is
logged or counted until the transaction commits, so a change that rolls back (a lost race,
a 409) leaves no trace; a callback never fails the request that made the change.

Log lines (logger ``executions.engine.transitions``, INFO; one JSON object per line in
production) carry ``task_execution_id``, ``flow_execution_id``, ``task_name``, ``idx``,
``from`` (``null`` for a new execution), ``to`` and ``organization_id``; claims add
``worker_id``. Flow executions: ``flow_execution_id``, ``flow_id``, ``from``, ``to``,
``organization_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from executions.models import FlowExecution, TaskExecution
from flowplatform import metrics

logger = logging.getLogger("executions.engine.transitions")

# (task_execution_id, flow_execution_id, organization_id, task_name, idx, from, to)
_Change = tuple[str, str, str, str, int, str | None, str]


def task_transitions(
    changes: Iterable[tuple[TaskExecution, str | None, str]], *, worker_id: str | None = None
) -> None:
    """Report ``(task, from_status, to_status)`` changes once the transaction commits.
    The fields are read now: the caller may go on changing the objects."""
    captured = [
        (
            str(task.id),
            str(task.flow_execution_id),
            str(task.organization_id),
            task.task_name,
            task.task_execution_idx,
            before,
            after,
        )
        for task, before, after in changes
    ]
    if captured:
        transaction.on_commit(lambda: _emit(captured, worker_id), robust=True)


def tasks_claimed(tasks: Iterable[TaskExecution], *, worker_id: str) -> None:
    """Claimed executions: queued → running, and the claims."""
    captured = [
        (
            str(task.id),
            str(task.flow_execution_id),
            str(task.organization_id),
            task.task_name,
            task.task_execution_idx,
            "queued",
            "running",
        )
        for task in tasks
    ]
    if captured:
        transaction.on_commit(lambda: _emit(captured, worker_id, claims=True), robust=True)


def _emit(changes: list[_Change], worker_id: str | None, *, claims: bool = False) -> None:
    if claims:
        metrics.CLAIMS.inc(len(changes))
    info = logger.isEnabledFor(logging.INFO)
    for task_id, flow_execution_id, organization_id, name, idx, before, after in changes:
        metrics.TASK_TRANSITIONS.labels(after).inc()
        if not info:
            continue
        extra: dict[str, Any] = {
            "task_execution_id": task_id,
            "flow_execution_id": flow_execution_id,
            "task_name": name,
            "idx": idx,
            "from": before,
            "to": after,
            "organization_id": organization_id,
        }
        if worker_id is not None:
            extra["worker_id"] = worker_id
        logger.info("task %s[%d] %s -> %s", name, idx, before or "new", after, extra=extra)


def flow_transition(execution: FlowExecution, before: str, after: str) -> None:
    extra = {
        "flow_execution_id": str(execution.id),
        "flow_id": str(execution.flow_id),
        "from": before,
        "to": after,
        "organization_id": str(execution.organization_id),
    }

    def log() -> None:
        logger.info("flow execution %s %s -> %s", execution.id, before, after, extra=extra)

    transaction.on_commit(log, robust=True)


def leases_expired(count: int) -> None:
    if count:
        transaction.on_commit(lambda: metrics.LEASE_EXPIRIES.inc(count), robust=True)


def retry_queued() -> None:
    transaction.on_commit(metrics.RETRIES.inc, robust=True)
