"""The internal task-status batch: ``POST /api/flow-executions/{id}/task-status`` (seed 004).

Statuses are history: any text up to 50 characters (or null) is kept as reported, in order.
They also update the status of the task outputs that exist (``apply_task_statuses``); they
never change a task execution (that is ``POST /task-executions``), so a batch makes no
scheduling decision and does not need the flow execution's row lock (see
``add_task_statuses``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import connection, transaction

from executions.engine.definitions import definition_of
from executions.engine.events import collecting, emit
from executions.engine.state import lock_flow_execution
from executions.enums import FlowExecutionStatus
from executions.models import FlowExecution, TaskStatus
from executions.representations import task_status_data
from flowplatform.exceptions import BadRequest, NotFound
from flowplatform.principal import Principal
from realtime.publisher import EventSpec


@transaction.atomic
def add_task_statuses(
    *, principal: Principal, flow_execution_id: UUID, statuses: Sequence[dict[str, Any]]
) -> list[TaskStatus]:
    """Append ``statuses`` (``{task_name, status}``, in order) to the flow execution's
    history in one transaction; returns the created rows.

    ``seq`` orders them: nanoseconds since the epoch at the batch's start plus the item's
    index, never below the last stored ``seq`` of the flow execution. Batches of one flow
    execution run one after another (a transaction-scoped advisory lock on PostgreSQL;
    SQLite has a single writer), so they cannot interleave and ``seq`` follows commit order.
    A batch that sets the output status of more than one task also takes the flow
    execution's row lock, so its multi-row output writes are ordered with the engine's; a
    batch about one task (what a worker sends) writes one output row and never waits for
    the engine's decisions. One outbox insert carries every ``task_status.added`` and
    ``task_output.updated`` event. ``BadRequest`` for task names not in the flow.
    """
    from outputs import services as outputs

    execution = _visible_flow_execution(principal, flow_execution_id)
    known = set(definition_of(execution).names)
    unknown = [
        {"loc": ["body", "statuses", i, "task_name"], "msg": "Unknown task.", "type": "unknown"}
        for i, item in enumerate(statuses)
        if item["task_name"] not in known
    ]
    if unknown:
        raise BadRequest("Unknown task name(s) for this flow execution's flow.", details=unknown)
    touched = {
        item["task_name"]
        for item in statuses
        if item.get("status") in outputs.VALID_OUTPUT_STATUSES
    }
    if len(touched) > 1:
        execution = lock_flow_execution(
            flow_execution_id=execution.id, organization=principal.organization
        )
    _serialize_batches(execution.id)
    last = (
        TaskStatus.objects.filter(flow_execution_id=execution.id)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    base = max(time.time_ns(), (last or 0) + 1)
    with collecting():
        rows = TaskStatus.objects.bulk_create(
            [
                TaskStatus(
                    id=uuid.uuid4(),
                    seq=base + index,
                    organization_id=execution.organization_id,
                    flow_execution_id=execution.id,
                    task_name=item["task_name"],
                    status=item.get("status"),
                )
                for index, item in enumerate(statuses)
            ]
        )
        emit(
            *(
                EventSpec(
                    type="task_status.added",
                    organization_id=execution.organization_id,
                    flow_id=execution.flow_id,
                    flow_execution_id=execution.id,
                    task_name=row.task_name,
                    data=task_status_data(row),
                )
                for row in rows
            )
        )
        outputs.apply_task_statuses(
            flow_execution=execution,
            flow_id=execution.flow_id,
            statuses=[(row.task_name, row.status) for row in rows],
        )
    return rows


def _visible_flow_execution(principal: Principal, flow_execution_id: UUID) -> FlowExecution:
    execution = (
        FlowExecution.objects.filter(id=flow_execution_id, organization=principal.organization)
        .exclude(status=FlowExecutionStatus.DELETED)
        .only("id", "organization_id", "flow_id", "flow_version", "status")
        .first()
    )
    if execution is None:
        raise NotFound(f"Flow execution {flow_execution_id} not found.")
    return execution


def _serialize_batches(flow_execution_id: UUID) -> None:
    """Hold, until the transaction ends, a lock that only other status batches of this flow
    execution take (PostgreSQL advisory lock keyed by its id; SQLite needs none)."""
    if connection.vendor != "postgresql":
        return
    key = UUID(str(flow_execution_id)).int & 0x7FFF_FFFF_FFFF_FFFF
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
