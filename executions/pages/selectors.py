"""Read-only queries behind the browser pages, all scoped to one organization."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Q, QuerySet

from executions.enums import FlowExecutionStatus
from executions.models import Flow, FlowExecution, TaskExecution, TaskStatus
from executions.representations import (
    flow_execution_data,
    task_execution_data,
    task_status_data,
)
from executions.selectors import get_flow_version, list_flows, list_task_outputs_of_execution
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from outputs.representations import task_output_data
from realtime.models import Event

STATUS_HISTORY_LIMIT = 1000


def list_flows_with_counts(*, organization: Organization) -> QuerySet[Flow]:
    """The organization's live flows, newest first, with how many executions each has."""
    live = ~Q(executions__status=FlowExecutionStatus.DELETED)
    return list_flows(organization=organization).annotate(
        execution_count=Count("executions", filter=live)
    )


def definition_of_execution(*, execution: FlowExecution) -> Any:
    """The definition the execution pinned (its flow version), else the flow's current one."""
    try:
        return get_flow_version(flow=execution.flow, version=execution.flow_version).definition
    except NotFound:
        return execution.flow.definition


def last_event_id(*, flow_id: Any) -> int:
    """The newest outbox event of the flow: the page asks the WebSocket to replay after it."""
    return Event.objects.filter(flow_id=flow_id).aggregate(last=Max("id"))["last"] or 0


def current_task_executions(*, execution: FlowExecution) -> dict[str, dict[str, Any]]:
    """Each task's latest attempt (highest ``task_execution_idx``), as the API renders it."""
    latest: dict[str, TaskExecution] = {}
    rows = TaskExecution.objects.filter(flow_execution=execution).order_by(
        "task_name", "task_execution_idx"
    )
    for row in rows.iterator():
        latest[row.task_name] = row
    return {name: task_execution_data(row) for name, row in latest.items()}


def task_outputs_of(*, execution: FlowExecution) -> dict[str, dict[str, Any]]:
    rows = list_task_outputs_of_execution(flow_execution=execution)
    return {row.task_name: task_output_data(row) for row in rows}


def list_task_statuses(
    *, execution: FlowExecution, task_name: str | None = None
) -> list[dict[str, Any]]:
    """Status history in arrival order; the newest ``STATUS_HISTORY_LIMIT`` rows at most."""
    rows = TaskStatus.objects.filter(flow_execution=execution)
    if task_name is not None:
        rows = rows.filter(task_name=task_name)
    newest = list(rows.order_by("-seq")[:STATUS_HISTORY_LIMIT])
    return [task_status_data(row) for row in reversed(newest)]


def execution_state(*, execution: FlowExecution) -> dict[str, Any]:
    """The execution, each task's latest attempt and the outputs, as the API renders them,
    with the id of the newest event they already reflect (the WebSocket replays after it).

    The event id is read first: an event that lands between the reads is replayed although
    the state already shows it, and applying it twice changes nothing.
    """
    since = last_event_id(flow_id=execution.flow_id)
    execution.refresh_from_db()
    return {
        "flow_execution": flow_execution_data(execution),
        "tasks": current_task_executions(execution=execution),
        "outputs": task_outputs_of(execution=execution),
        "last_event_id": since,
    }
