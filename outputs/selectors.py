"""Reading task outputs, always scoped to one organization.

Soft-deleted outputs (``status = deleted``) are invisible to every read (seed 000).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.db import connections
from django.db.models import Func, Q, QuerySet, TextField
from django.db.models.functions import Cast

from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from flowplatform.pagination import unknown_cursor
from flowplatform.representation import (
    JSON_KIND,
    TIME_KIND,
    UUID_KIND,
    as_uuid,
    iso,
    iso_sql,
)
from outputs.enums import TaskOutputStatus
from outputs.models import TaskOutput
from outputs.representations import TASK_OUTPUT


@dataclass(frozen=True)
class TaskOutputFilters:
    flow_execution_id: UUID | None = None
    task_name: str | None = None
    status: str | None = None
    created_after: datetime | None = None  # exclusive
    created_before: datetime | None = None  # exclusive
    # Cursor: only rows after this output in list order (keyset on (created_at, id)).
    starting_after: UUID | None = None


def visible_task_outputs(*, organization: Organization) -> QuerySet[TaskOutput]:
    return TaskOutput.objects.filter(organization=organization).exclude(
        status=TaskOutputStatus.DELETED
    )


def get_task_output(*, organization: Organization, task_output_id: str | UUID) -> TaskOutput:
    """The organization's output; NotFound for unknown, malformed, foreign or deleted ids."""
    pk = as_uuid(task_output_id)
    row = (
        visible_task_outputs(organization=organization).filter(pk=pk).first()
        if pk is not None
        else None
    )
    if row is None:
        raise NotFound("Task output not found.")
    return row


def task_output_cursor(
    *, organization: Organization, task_output_id: UUID
) -> tuple[datetime, UUID]:
    """The list position of ``starting_after``: the (created_at, id) of that output.

    An id that is not one of the organization's outputs is a bad request (400,
    loc ``["query", "starting_after"]``), answered the same for unknown and foreign ids. A
    soft-deleted output still marks its position, so a walk through the pages survives
    the deletion of the row it stopped on.
    """
    created_at = (
        TaskOutput.objects.filter(organization=organization, pk=task_output_id)
        .values_list("created_at", flat=True)
        .first()
    )
    if created_at is None:
        unknown_cursor("No task output with this id.")
    return created_at, task_output_id


def list_task_outputs(
    *, organization: Organization, filters: TaskOutputFilters
) -> QuerySet[TaskOutput]:
    """The organization's visible outputs matching ``filters``, newest first
    (``created_at`` desc, ``id`` desc); served by the ``to_org_created`` index.

    Raises BadRequest (400) when ``starting_after`` is not one of the organization's
    outputs (see ``task_output_cursor``).
    """
    qs = visible_task_outputs(organization=organization)
    if filters.flow_execution_id is not None:
        qs = qs.filter(flow_execution_id=filters.flow_execution_id)
    if filters.task_name is not None:
        qs = qs.filter(task_name=filters.task_name)
    if filters.status is not None:
        qs = qs.filter(status=filters.status)
    if filters.created_after is not None:
        qs = qs.filter(created_at__gt=filters.created_after)
    if filters.created_before is not None:
        qs = qs.filter(created_at__lt=filters.created_before)
    if filters.starting_after is not None:
        created_at, pk = task_output_cursor(
            organization=organization, task_output_id=filters.starting_after
        )
        qs = qs.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    return qs.order_by("-created_at", "-id")


class IsoUtc(Func):
    """PostgreSQL: a timestamptz as ``iso`` writes it (``iso_sql``)."""

    template = iso_sql("%(expressions)s")
    output_field = TextField()


def task_output_rows(queryset: QuerySet[TaskOutput]) -> QuerySet:
    """``queryset`` as value tuples of ``TASK_OUTPUT``'s fields, in its order, for
    ``row_dict``.

    No model instances, and the database does the conversions it does fastest: JSON columns
    come as their JSON text (spliced into the response without being parsed and re-encoded)
    and, on PostgreSQL, ids and timestamps come as the text the API shows.
    """
    postgres = connections[queryset.db].vendor == "postgresql"
    columns: list[Any] = []
    for field in TASK_OUTPUT.fields:
        if field.kind == JSON_KIND or (postgres and field.kind == UUID_KIND):
            columns.append(Cast(field.source, output_field=TextField()))
        elif postgres and field.kind == TIME_KIND:
            columns.append(IsoUtc(field.source))
        else:
            columns.append(field.source)
    return queryset.values_list(*columns)


def row_dict(values: tuple[Any, ...]) -> dict[str, Any]:
    """One ``task_output_rows`` tuple rendered exactly as ``TASK_OUTPUT.data`` renders it
    (for the JSON encoder of ``flowplatform.renderers``: UUID objects and pre-encoded JSON
    fragments are written as they are)."""
    row: dict[str, Any] = {}
    for field, value in zip(TASK_OUTPUT.fields, values, strict=True):
        if field.kind == JSON_KIND and value is not None:
            value = orjson.Fragment(value)
        elif field.kind == TIME_KIND and not isinstance(value, str):
            value = iso(value)
        row[field.key] = value
    return row
