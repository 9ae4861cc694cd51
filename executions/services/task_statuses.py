"""The internal task-status batch: ``POST /api/flow-executions/{id}/task-status`` (seed 004).

Statuses are history: any text up to 50 characters (or null) is kept as reported, in order.
They also update the status of the task outputs that exist (``outputs.apply_task_statuses``);
they never change a task execution (that is ``POST /task-executions``), so a batch makes no
scheduling decision and mostly does without the flow execution's row lock (see
``add_task_statuses``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import connection, transaction

from executions.engine import outputs
from executions.engine.definitions import check_task_names, definition_of
from executions.engine.events import collecting, emit
from executions.engine.state import lock_flow_execution
from executions.models import TaskStatus
from executions.representations import task_status_data
from executions.selectors import get_flow_execution
from flowplatform.principal import Principal
from realtime.publisher import EventSpec

ADDED = "task_status.added"


@transaction.atomic
def add_task_statuses(
    *, principal: Principal, flow_execution_id: UUID, statuses: Sequence[tuple[str, str | None]]
) -> list[dict[str, Any]]:
    """Append ``statuses`` (``(task_name, status)`` pairs, in order) to the flow execution's
    history in one transaction; returns the created rows as the API renders them, in order.

    ``seq`` orders them: nanoseconds since the epoch at the batch's start plus the item's
    index, never below the last stored ``seq`` of the flow execution. Batches of one flow
    execution run one after another (a transaction-scoped advisory lock on PostgreSQL;
    SQLite has a single writer), so they cannot interleave and ``seq`` follows commit order.
    A batch that changes the output status of more than one task also takes the flow
    execution's row lock, so its multi-row output writes are ordered with the engine's; a
    batch that changes at most one (read first, without a lock: a worker's history repeats
    the statuses its reports already gave the outputs) writes at most one output row and
    never waits for the engine's decisions. One outbox insert carries every
    ``task_status.added`` and ``task_output.updated`` event (in that order). ``BadRequest``
    for task names not in the flow.
    """
    execution = get_flow_execution(
        organization=principal.organization, flow_execution_id=flow_execution_id
    )
    check_task_names(
        definition_of(execution),
        [(("body", "statuses", i, "task_name"), name) for i, (name, _) in enumerate(statuses)],
    )
    if len(outputs.wanted_statuses(statuses)) > 1 and (
        len(outputs.outputs_changed_by(flow_execution_id=execution.id, statuses=statuses)) > 1
    ):
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
                    task_name=task_name,
                    status=status,
                )
                for index, (task_name, status) in enumerate(statuses)
            ]
        )
        data = [task_status_data(row) for row in rows]
        emit(
            *(
                EventSpec(
                    type=ADDED,
                    organization_id=execution.organization_id,
                    flow_id=execution.flow_id,
                    flow_execution_id=execution.id,
                    task_name=row.task_name,
                    data=item,
                )
                for row, item in zip(rows, data, strict=True)
            )
        )
        outputs.apply_task_statuses(
            flow_execution_id=execution.id, flow_id=execution.flow_id, statuses=statuses
        )
    return data


def _serialize_batches(flow_execution_id: UUID) -> None:
    """Hold, until the transaction ends, a lock that only other status batches of this flow
    execution take (PostgreSQL advisory lock keyed by its id; SQLite needs none)."""
    if connection.vendor != "postgresql":
        return
    key = UUID(str(flow_execution_id)).int & 0x7FFF_FFFF_FFFF_FFFF
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
