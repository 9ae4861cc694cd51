"""Reading task executions: organization-scoped getters, the filtered list, and a fast
renderer for ``.values()`` rows that gives exactly what ``task_execution_data`` gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet

from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import TaskExecution
from flowplatform.exceptions import NotFound, raise_validation
from flowplatform.models import Organization
from flowplatform.representation import iso

ROW_FIELDS = (
    "id",
    "organization_id",
    "flow_execution_id",
    "task_name",
    "task_execution_idx",
    "status",
    "input",
    "output",
    "error",
    "created_at",
    "updated_at",
    "modified_by",
    "started_at",
    "completed_at",
    "edited_status",
    "stale_status",
    "stale_reason",
    "task_executor_name",
    "attempt",
    "max_attempts",
)
_UUIDS = ("id", "organization_id", "flow_execution_id")
_TIMES = ("created_at", "updated_at", "started_at", "completed_at")


def row_data(row: dict[str, Any]) -> dict[str, Any]:
    """A ``.values(*ROW_FIELDS)`` row as the API renders a task execution."""
    data = {name: row[name] for name in ROW_FIELDS}
    for name in _UUIDS:
        data[name] = str(data[name])
    for name in _TIMES:
        data[name] = iso(data[name])
    return data


def task_executions_of(*, organization: Organization) -> QuerySet[TaskExecution]:
    """Visible task executions: the organization's, not deleted, of live flow executions."""
    return (
        TaskExecution.objects.filter(organization=organization)
        .exclude(status=TaskExecutionStatus.DELETED)
        .exclude(flow_execution__status=FlowExecutionStatus.DELETED)
    )


def get_task_execution(*, organization: Organization, task_execution_id: UUID) -> TaskExecution:
    try:
        return task_executions_of(organization=organization).get(id=task_execution_id)
    except (TaskExecution.DoesNotExist, ValueError):
        raise NotFound(f"Task execution {task_execution_id} not found.") from None


def list_task_executions(
    *,
    organization: Organization,
    flow_execution_id: UUID | None = None,
    task_name: str | None = None,
    task_execution_idx: int | None = None,
    status: str | None = None,
    starting_after: UUID | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], bool]:
    """One page, newest first (``created_at``, then ``id``), as rendered dicts, and whether
    more follow. ``starting_after`` is the id of the last row of the previous page."""
    qs = task_executions_of(organization=organization)
    filters = {
        "flow_execution_id": flow_execution_id,
        "task_name": task_name,
        "task_execution_idx": task_execution_idx,
        "status": status,
    }
    qs = qs.filter(**{key: value for key, value in filters.items() if value is not None})
    if starting_after is not None:
        qs = qs.filter(_after(organization, starting_after))
    rows = list(qs.order_by("-created_at", "-id").values(*ROW_FIELDS)[: limit + 1])
    return [row_data(row) for row in rows[:limit]], len(rows) > limit


def _after(organization: Organization, cursor: UUID) -> Q:
    created_at: datetime | None = (
        TaskExecution.objects.filter(organization=organization, id=cursor)
        .values_list("created_at", flat=True)
        .first()
    )
    if created_at is None:
        raise_validation({"starting_after": ["Unknown task execution id."]}, location="query")
    return Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=cursor)
