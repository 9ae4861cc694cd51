"""The internal task-status batch: ``POST /api/flow-executions/{id}/task-status`` (seed 004).

Statuses are history: any text up to 50 characters (or null) is kept as reported, in order.
They also update the status of the task outputs that exist (``apply_task_statuses``); they
never change a task execution (that is ``POST /task-executions``), so a batch makes no
scheduling decision and does not need the flow execution's row lock (see
``add_task_statuses``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from executions.engine.definitions import definition_of
from executions.engine.events import collecting, emit, emit_query
from executions.engine.state import lock_flow_execution
from executions.enums import FlowExecutionStatus
from executions.models import FlowExecution, TaskStatus
from executions.representations import task_status_data, task_status_data_sql
from flowplatform.exceptions import BadRequest, NotFound
from flowplatform.principal import Principal
from realtime.publisher import EventSpec


@transaction.atomic
def add_task_statuses(
    *, principal: Principal, flow_execution_id: UUID, statuses: Sequence[tuple[str, str | None]]
) -> list[dict[str, Any]]:
    """Append ``statuses`` (``(task_name, status)`` pairs, in order) to the flow execution's
    history in one transaction; returns the created rows as the API renders them
    (``task_status_data``), in order.

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

    On PostgreSQL the history rows, the output statuses and every event are written by one
    statement that renders the events' data (and the response) itself: no row is built in
    Python, whatever the size of the batch.
    """
    from outputs import services as outputs

    execution = _visible_flow_execution(principal, flow_execution_id)
    known = set(definition_of(execution).names)
    unknown = [
        {"loc": ["body", "statuses", i, "task_name"], "msg": "Unknown task.", "type": "unknown"}
        for i, (task_name, _) in enumerate(statuses)
        if task_name not in known
    ]
    if unknown:
        raise BadRequest("Unknown task name(s) for this flow execution's flow.", details=unknown)
    valid = outputs.VALID_OUTPUT_STATUSES
    touched = {task_name for task_name, status in statuses if status in valid}
    if (
        len(touched) > 1
        and len(outputs.outputs_changed_by(flow_execution_id=execution.id, statuses=statuses)) > 1
    ):
        execution = lock_flow_execution(
            flow_execution_id=execution.id, organization=principal.organization
        )
    _serialize_batches(execution.id)
    if connection.vendor == "postgresql":
        return _add_postgresql(execution, statuses)
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
            flow_execution=execution,
            flow_id=execution.flow_id,
            statuses=[(row.task_name, row.status) for row in rows],
        )
    return data


ADDED = "task_status.added"

# The batch arrives as one JSON array of ``[task_name, status]`` pairs. ``seq`` continues the
# flow execution's history (read after ``_serialize_batches`` took its lock, in an earlier
# statement, so this statement's snapshot sees every earlier batch). The history rows'
# events come first (``ord``: the item's index), then the outputs' (``apply_task_statuses``).
_ADD_CTES = """
items AS (
    SELECT item->>0 AS task_name, item->>1 AS status, n
    FROM jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS batch(item, n)
),
base AS (
    SELECT greatest(%(now_ns)s::bigint, coalesce(
        (SELECT max(seq) FROM {table} WHERE flow_execution_id = %(flow_execution_id)s), 0
    ) + 1) - 1 AS seq
),
added AS (
    INSERT INTO {table} (id, seq, organization_id, flow_execution_id, task_name, status,
        created_at)
    SELECT gen_random_uuid(), base.seq + items.n, %(organization_id)s, %(flow_execution_id)s,
        items.task_name, items.status, %(now)s
    FROM items CROSS JOIN base ORDER BY items.n
    RETURNING seq, organization_id, flow_execution_id, task_name, {data} AS data
),
{output_ctes}"""
_ADD_SELECT = """
SELECT %(added)s::text AS type, added.organization_id, %(flow_id)s::uuid AS flow_id,
    added.flow_execution_id, added.task_name, added.data, added.seq - base.seq AS ord
FROM added CROSS JOIN base
UNION ALL
{output_select}"""


def _add_postgresql(
    execution: FlowExecution, statuses: Sequence[tuple[str, str | None]]
) -> list[dict[str, Any]]:
    from outputs import services as outputs

    output_ctes, output_select, output_params = outputs.task_statuses_outputs_query(
        items="items", after=len(statuses)
    )
    ctes = _ADD_CTES.format(
        table=connection.ops.quote_name(TaskStatus._meta.db_table),
        data=task_status_data_sql(),
        output_ctes=output_ctes,
    )
    messages = emit_query(
        ctes=ctes,
        select=_ADD_SELECT.format(output_select=output_select),
        params={
            **output_params,
            "items": json.dumps([list(item) for item in statuses]),
            "now_ns": time.time_ns(),
            "now": timezone.now(),
            "organization_id": execution.organization_id,
            "flow_execution_id": execution.id,
            "flow_id": execution.flow_id,
            "added": ADDED,
        },
    )
    return [message["data"] for message in messages if message["event_type"] == ADDED]


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
