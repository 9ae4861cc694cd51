"""Reading task executions: organization-scoped getters and the filtered list."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.db import connection
from django.db.models import Q, QuerySet

from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from executions.representations import TASK_EXECUTION, task_execution_data
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from flowplatform.pagination import unknown_cursor


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


@dataclass(frozen=True)
class Page:
    """One page of the list: ``items`` to render as the response body (rendered dicts, or on
    PostgreSQL the page's JSON text as an ``orjson.Fragment``), whether more follow, and the
    id of its last item (the next page's cursor)."""

    items: list[dict[str, Any]] | orjson.Fragment
    more: bool
    last_id: str | None


def list_task_executions(
    *,
    organization: Organization,
    flow_execution_id: UUID | None = None,
    task_name: str | None = None,
    task_execution_idx: int | None = None,
    status: str | None = None,
    starting_after: UUID | None = None,
    limit: int = 100,
) -> Page:
    """One page, newest first (``created_at``, then ``id``). ``starting_after`` is the id of
    the last item of the previous page."""
    filters = {
        "flow_execution_id": flow_execution_id,
        "task_name": task_name,
        "task_execution_idx": task_execution_idx,
        "status": status,
    }
    filters = {key: value for key, value in filters.items() if value is not None}
    after = _cursor(organization, starting_after) if starting_after is not None else None
    if connection.vendor == "postgresql":
        return _page_postgresql(organization, filters, after, limit)
    qs = task_executions_of(organization=organization).filter(**filters)
    if after is not None:
        created_at, cursor = after
        qs = qs.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=cursor))
    found = list(qs.order_by("-created_at", "-id")[: limit + 1])
    items = [task_execution_data(row) for row in found[:limit]]
    return Page(items, len(found) > limit, items[-1]["id"] if items else None)


def _cursor(organization: Organization, cursor: UUID) -> tuple[datetime, UUID]:
    created_at: datetime | None = (
        TaskExecution.objects.filter(organization=organization, id=cursor)
        .values_list("created_at", flat=True)
        .first()
    )
    if created_at is None:
        unknown_cursor("Unknown task execution id.")
    return created_at, cursor


# PostgreSQL renders each item as the JSON text the API shows (``TASK_EXECUTION.data_sql``,
# keys in the API's order) and the page is spliced into the response without being parsed
# or re-encoded; the statement is built once per combination of filters. Building the
# equivalent ORM query and converting its rows had been most of the request's CPU time
# (bench/README.md, "Hot paths").
def _page_postgresql(
    organization: Organization,
    filters: dict[str, Any],
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> Page:
    params: list[Any] = [
        organization.id,
        TaskExecutionStatus.DELETED,
        FlowExecutionStatus.DELETED,
        *filters.values(),
    ]
    if after is not None:
        params += after
    with connection.cursor() as cursor:
        cursor.execute(_page_sql(tuple(filters), after is not None), [*params, limit + 1])
        rows = cursor.fetchall()
    page = rows[:limit]
    body = orjson.Fragment("[" + ",".join(text for _, text in page) + "]")
    return Page(body, len(rows) > limit, page[-1][0] if page else None)


@functools.cache
def _page_sql(filters: tuple[str, ...], after: bool) -> str:
    """The statement behind ``task_executions_of(...).filter(**filters)``, newest first,
    from the ``after`` cursor on: ``(id text, item JSON text)`` rows."""
    quote = connection.ops.quote_name
    te, fe = quote(TaskExecution._meta.db_table), quote(FlowExecution._meta.db_table)

    def col(name: str) -> str:
        return quote(TaskExecution._meta.get_field(name).column)

    where = [
        f"t.{col('organization')} = %s",
        f"t.{col('status')} <> %s",
        f"f.{quote(FlowExecution._meta.get_field('status').column)} <> %s",
        *(f"t.{col(name)} = %s" for name in filters),
    ]
    if after:
        where.append(f"(t.{col('created_at')}, t.{col('id')}) < (%s, %s)")
    return (
        f"SELECT t.{col('id')}::text, {TASK_EXECUTION.data_sql('t', ordered=True)}::text"
        f" FROM {te} t JOIN {fe} f ON f.{quote('id')} = t.{col('flow_execution')}"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY t.{col('created_at')} DESC, t.{col('id')} DESC LIMIT %s"
    )
