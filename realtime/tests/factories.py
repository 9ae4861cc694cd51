"""Rows made directly with the ORM (the API endpoints are built elsewhere) and committed
publishing."""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from executions.models import Flow, FlowExecution, FlowVersion
from flowplatform.models import Organization
from realtime.models import Event
from realtime.publisher import EventSpec, publish

ALL_EVENT_TYPES = [
    "flow_execution.created",
    "flow_execution.status_changed",
    "task_execution.created",
    "task_execution.updated",
    "task_execution.stale",
    "task_status.added",
    "task_output.created",
    "task_output.updated",
]
SUMMARY_TYPES = ["task_output.created", "task_output.updated"]


TASK_NAMES = ["a", "b", "c"]


def make_flow(organization: Organization, *, name: str = "pipeline") -> Flow:
    """A flow and its version 1: three independent ``noop`` tasks a, b, c."""
    definition = {"tasks": [{"name": n, "task_executor_name": "noop"} for n in TASK_NAMES]}
    flow = Flow.objects.create(organization=organization, display_name=name, definition=definition)
    FlowVersion.objects.create(
        organization=organization, flow=flow, version=flow.version, definition=definition
    )
    return flow


def make_execution(flow: Flow) -> FlowExecution:
    return FlowExecution.objects.create(
        organization_id=flow.organization_id, flow=flow, flow_version=flow.version
    )


def spec(
    execution: FlowExecution, event_type: str, *, task_name: str | None = "a", **data: Any
) -> EventSpec:
    return EventSpec(
        type=event_type,
        organization_id=execution.organization_id,
        flow_id=execution.flow_id,
        flow_execution_id=execution.id,
        task_name=task_name,
        data={"marker": uuid.uuid4().hex, **data},
    )


def publish_committed(specs: list[EventSpec]) -> list[Event]:
    """Publish in a transaction that commits (the push happens on commit)."""
    with transaction.atomic():
        return publish(specs)


apublish = sync_to_async(publish_committed)
