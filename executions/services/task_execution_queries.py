"""Reading task executions: organization-scoped getters, the filtered list, and a fast
renderer for ``.values()`` rows that gives exactly what ``task_execution_data`` gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.db import connections
from django.db.models import Func, Q, QuerySet, TextField
from django.db.models.functions import Cast

from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import TaskExecution
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from flowplatform.pagination import unknown_cursor
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
    qs = qs.order_by("-created_at", "-id")
    if connections[qs.db].vendor != "postgresql":
        rows = list(qs.values(*ROW_FIELDS)[: limit + 1])
        return [row_data(row) for row in rows[:limit]], len(rows) > limit
    values = list(qs.values_list(*_TEXT_COLUMNS)[: limit + 1])
    return [_text_row_data(row) for row in values[:limit]], len(values) > limit


# PostgreSQL renders ids, timestamps and JSON columns as the text the API shows, and the
# JSON text is spliced into the response (orjson.Fragment) without being parsed and
# re-encoded: for a page of 100 rows that conversion was a third of the request's CPU time
# (bench/README.md, "Hot paths"). The same technique as outputs.selectors.
class _IsoUtc(Func):
    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    output_field = TextField()


_JSON = frozenset({"input", "output", "error", "stale_reason"})
_TEXT_COLUMNS = [
    Cast(name, output_field=TextField())
    if name in _JSON or name in _UUIDS
    else _IsoUtc(name)
    if name in _TIMES
    else name
    for name in ROW_FIELDS
]


def _text_row_data(values: tuple[Any, ...]) -> dict[str, Any]:
    """A ``_TEXT_COLUMNS`` row as ``task_execution_data`` renders it (once encoded)."""
    data = dict(zip(ROW_FIELDS, values, strict=True))
    for name in _JSON:
        if data[name] is not None:
            data[name] = orjson.Fragment(data[name])
    for name in _TIMES:
        value = data[name]
        if value is not None and value.endswith(".000000Z"):  # iso() omits a zero fraction
            data[name] = value[:-8] + "Z"
    return data


def _after(organization: Organization, cursor: UUID) -> Q:
    created_at: datetime | None = (
        TaskExecution.objects.filter(organization=organization, id=cursor)
        .values_list("created_at", flat=True)
        .first()
    )
    if created_at is None:
        unknown_cursor("Unknown task execution id.")
    return Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=cursor)
