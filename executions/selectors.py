"""Organization-scoped reads of flows, their versions and flow executions.

Every getter filters by organization, so another organization's object is answered exactly like
a missing one (``NotFound``). Soft-deleted flows and deleted flow executions are missing too.
List selectors return lazy querysets in the API's default order; pagination is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from executions.enums import FlowExecutionStatus, TaskOutputStatus
from executions.models import Flow, FlowExecution, FlowVersion
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from outputs.models import TaskOutput

FLOW_EXECUTION_ORDERINGS = ("created_at", "-created_at", "updated_at", "-updated_at")


# -- flows ------------------------------------------------------------------------------------


def flows_of(*, organization: Organization, include_deleted: bool = False) -> QuerySet[Flow]:
    qs = Flow.objects.filter(organization=organization)
    return qs if include_deleted else qs.filter(deleted=False)


def get_flow(*, organization: Organization, flow_id: UUID | str, for_update: bool = False) -> Flow:
    """The organization's flow; ``NotFound`` when unknown, foreign or soft-deleted."""
    qs = flows_of(organization=organization)
    if for_update:
        qs = qs.select_for_update()
    try:
        return qs.get(id=flow_id)
    except (Flow.DoesNotExist, ValueError):
        raise NotFound(f"Flow {flow_id} not found.") from None


def flow_visible(*, organization: Organization, flow_id: UUID) -> bool:
    """Whether ``flow_id`` is one of the organization's live flows (the WebSocket streams')."""
    return flows_of(organization=organization).filter(id=flow_id).exists()


def list_flows(
    *,
    organization: Organization,
    status: str | None = None,
    tag: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Flow]:
    """Live flows, newest first. Date bounds are exclusive (as for task outputs).

    ``tag`` matches flows whose ``tags`` is an array containing that string or an object with
    that key.
    """
    qs = flows_of(organization=organization)
    if status:
        qs = qs.filter(status=status)
    if created_after is not None:
        qs = qs.filter(created_at__gt=created_after)
    if created_before is not None:
        qs = qs.filter(created_at__lt=created_before)
    if tag is not None:
        qs = qs.filter(_has_tag(tag))
    return qs.order_by("-created_at", "-id")


def _has_tag(tag: str) -> Q:
    if connection.vendor == "postgresql":
        # jsonb ``?`` matches both top-level string elements of an array and object keys.
        return Q(tags__has_key=tag)
    table = Flow._meta.db_table
    sql = (
        f'EXISTS (SELECT 1 FROM json_each("{table}"."tags") AS t WHERE '
        f"(json_type(\"{table}\".\"tags\") = 'array' AND t.type = 'text' AND t.value = %s) OR "
        f'(json_type("{table}"."tags") = \'object\' AND t.key = %s))'
    )
    return Q(RawSQL(sql, (tag, tag), output_field=BooleanField()))


def list_flow_versions(*, flow: Flow) -> QuerySet[FlowVersion]:
    return FlowVersion.objects.filter(flow=flow).order_by("-version")


def get_flow_version(*, flow: Flow, version: int) -> FlowVersion:
    try:
        return FlowVersion.objects.get(flow=flow, version=version)
    except FlowVersion.DoesNotExist:
        raise NotFound(f"Flow {flow.id} has no version {version}.") from None


# -- flow executions --------------------------------------------------------------------------


def flow_executions_of(
    *, organization: Organization | UUID, include_deleted: bool = False
) -> QuerySet[FlowExecution]:
    """The organization's flow executions; deleted ones are missing unless asked for. Every
    lookup of a flow execution starts here (the engine's locks too)."""
    qs = FlowExecution.objects.filter(organization=organization)
    return qs if include_deleted else qs.exclude(status=FlowExecutionStatus.DELETED)


def get_flow_execution(
    *, organization: Organization, flow_execution_id: UUID | str
) -> FlowExecution:
    """The organization's flow execution; ``NotFound`` when unknown, foreign or deleted."""
    try:
        return flow_executions_of(organization=organization).get(id=flow_execution_id)
    except (FlowExecution.DoesNotExist, ValueError):
        raise NotFound(f"Flow execution {flow_execution_id} not found.") from None


def list_flow_executions(
    *,
    organization: Organization,
    flow_id: UUID | None = None,
    statuses: Iterable[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    ordering: str = "-created_at",
) -> QuerySet[FlowExecution]:
    """Flow executions that are not deleted, ordered by ``ordering`` (then id, same direction).

    Date bounds are exclusive (as for task outputs).
    """
    if ordering not in FLOW_EXECUTION_ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}")
    qs = flow_executions_of(organization=organization)
    if flow_id is not None:
        qs = qs.filter(flow_id=flow_id)
    if statuses:
        qs = qs.filter(status__in=list(statuses))
    bounds = {
        "created_at__gt": created_after,
        "created_at__lt": created_before,
        "updated_at__gt": updated_after,
        "updated_at__lt": updated_before,
    }
    qs = qs.filter(**{key: value for key, value in bounds.items() if value is not None})
    tiebreak = "-id" if ordering.startswith("-") else "id"
    return qs.order_by(ordering, tiebreak)


def list_task_outputs_of_execution(*, flow_execution: FlowExecution) -> QuerySet[TaskOutput]:
    """The execution's current task outputs in the order they appeared (deleted ones hidden)."""
    return (
        TaskOutput.objects.filter(flow_execution=flow_execution)
        .exclude(status=TaskOutputStatus.DELETED)
        .order_by("created_at", "id")
    )
