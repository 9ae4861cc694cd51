"""The internal task-status batch: ``POST /api/flow-executions/{id}/task-status`` (seed 004).

Statuses are history: any text up to 50 characters (or null) is kept as reported, in order.
They also update the status of the task outputs that exist (``apply_task_statuses``); they
never change a task execution (that is ``POST /task-executions``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import transaction

from executions.engine.definitions import definition_of
from executions.engine.state import lock_flow_execution
from executions.models import TaskStatus
from executions.representations import task_status_data
from flowplatform.exceptions import BadRequest
from flowplatform.principal import Principal
from realtime.publisher import EventSpec, publish


@transaction.atomic
def add_task_statuses(
    *, principal: Principal, flow_execution_id: UUID, statuses: Sequence[dict[str, Any]]
) -> list[TaskStatus]:
    """Append ``statuses`` (``{task_name, status}``, in order) to the flow execution's
    history in one transaction; returns the created rows.

    ``seq`` orders them: nanoseconds since the epoch at the batch's start plus the item's
    index, never below the last stored ``seq`` of the flow execution (which holds its row
    lock, so batches of one flow execution cannot interleave). One ``publish`` call carries
    every ``task_status.added`` event. ``BadRequest`` for task names not in the flow.
    """
    execution = lock_flow_execution(
        flow_execution_id=flow_execution_id, organization=principal.organization
    )
    known = set(definition_of(execution).names)
    unknown = [
        {"loc": ["body", "statuses", i, "task_name"], "msg": "Unknown task.", "type": "unknown"}
        for i, item in enumerate(statuses)
        if item["task_name"] not in known
    ]
    if unknown:
        raise BadRequest("Unknown task name(s) for this flow execution's flow.", details=unknown)
    last = (
        TaskStatus.objects.filter(flow_execution_id=execution.id)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    base = max(time.time_ns(), (last or 0) + 1)
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
    publish(
        [
            EventSpec(
                type="task_status.added",
                organization_id=execution.organization_id,
                flow_id=execution.flow_id,
                flow_execution_id=execution.id,
                task_name=row.task_name,
                data=task_status_data(row),
            )
            for row in rows
        ]
    )
    from outputs import services as outputs

    outputs.apply_task_statuses(
        flow_execution=execution,
        flow_id=execution.flow_id,
        statuses=[(row.task_name, row.status) for row in rows],
    )
    return rows
