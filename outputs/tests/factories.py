"""ORM factories for the outputs tests (no dependency on the flows API or the engine)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution
from flowplatform.models import Organization
from outputs.models import TaskOutput

DEFINITION: dict[str, Any] = {
    "tasks": [
        {"name": "a", "task_executor_name": "noop"},
        {"name": "b", "task_executor_name": "noop", "depends_on": ["a"]},
        {"name": "c", "task_executor_name": "noop", "depends_on": ["b"]},
    ]
}


def make_flow_execution(
    organization: Organization,
    *,
    definition: dict[str, Any] | None = None,
    status: str = "running",
    version: int = 1,
) -> FlowExecution:
    definition = definition or DEFINITION
    flow = Flow.objects.create(
        organization=organization,
        display_name="demo",
        definition=definition,
        version=version,
        status="published",
    )
    FlowVersion.objects.create(
        organization=organization, flow=flow, version=version, definition=definition
    )
    return FlowExecution.objects.create(
        organization=organization, flow=flow, flow_version=version, status=status, input={}
    )


def make_output(
    execution: FlowExecution,
    task_name: str = "a",
    *,
    created_at: datetime | None = None,
    **fields: Any,
) -> TaskOutput:
    fields.setdefault("summary", {"n": task_name})
    row = TaskOutput.objects.create(
        organization_id=execution.organization_id,
        flow_execution=execution,
        flow_version=execution.flow_version,
        task_name=task_name,
        **fields,
    )
    if created_at is not None:
        TaskOutput.objects.filter(pk=row.pk).update(created_at=created_at)
        row.refresh_from_db()
    return row


def make_task_execution(
    execution: FlowExecution, task_name: str = "a", *, idx: int = 0, **fields: Any
) -> TaskExecution:
    """A task execution row in a given state. Tests build the states the engine would
    leave behind; they never move one through a transition."""
    return TaskExecution.objects.create(
        organization_id=execution.organization_id,
        flow_execution=execution,
        task_name=task_name,
        task_execution_idx=idx,
        task_executor_name="noop",
        **fields,
    )
