"""Flow executions from the API's side: create-and-start, soft delete, cancel, re-execute.

Scheduling, cancelling, re-executing and deleting are the engine's (``executions.engine``);
these services find the organization's flow execution (or create it, pinned to the flow's
current version) and hand it over.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from executions.engine import lifecycle
from executions.enums import FlowExecutionStatus
from executions.models import FlowExecution
from executions.representations import flow_execution_data
from executions.selectors import flow_executions_of, get_flow, get_flow_execution
from flowplatform.exceptions import NotFound
from flowplatform.models import Organization
from realtime.publisher import EventSpec, publish


@transaction.atomic
def create_flow_execution(
    *, organization: Organization, actor: str, flow_id: Any, input: Any = None
) -> FlowExecution:
    """Create a ``queued`` execution of the flow's current version and start it.

    ``NotFound`` for an unknown, foreign or deleted flow; draft flows may run. Publishes
    ``flow_execution.created``; the engine then queues the root tasks (or keeps the execution
    queued while the organization is at its concurrency cap).
    """
    flow = get_flow(organization=organization, flow_id=flow_id)
    execution = FlowExecution.objects.create(
        organization=organization,
        flow=flow,
        flow_version=flow.version,
        input=input,
        modified_by=actor,
    )
    publish(
        [
            EventSpec(
                type="flow_execution.created",
                organization_id=organization.id,
                flow_id=flow.id,
                flow_execution_id=execution.id,
                data=flow_execution_data(execution),
            )
        ]
    )
    return lifecycle.start_flow_execution(execution=execution, actor=actor)


@transaction.atomic
def delete_flow_execution(
    *, organization: Organization, flow_execution_id: Any, actor: str
) -> None:
    """Soft-delete: status ``deleted`` (hidden from lists, 404 on read). Idempotent.

    Holds the flow execution's row lock (a deleted one too, so concurrent deletes run one
    after the other); the engine cancels its waiting tasks, asks running ones to stop and
    publishes ``flow_execution.status_changed``.
    """
    try:
        execution = (
            flow_executions_of(organization=organization, include_deleted=True)
            .select_for_update()
            .get(id=flow_execution_id)
        )
    except (FlowExecution.DoesNotExist, ValueError):
        raise NotFound(f"Flow execution {flow_execution_id} not found.") from None
    if execution.status != FlowExecutionStatus.DELETED:
        lifecycle.delete_flow_execution(execution=execution, actor=actor)


@transaction.atomic
def cancel_flow_execution(
    *, organization: Organization, flow_execution_id: Any, actor: str
) -> FlowExecution:
    """Ask the engine to cancel the organization's flow execution (``NotFound`` otherwise)."""
    execution = get_flow_execution(organization=organization, flow_execution_id=flow_execution_id)
    return lifecycle.cancel_flow_execution(execution=execution, actor=actor)


@transaction.atomic
def reexecute_flow_execution(
    *,
    organization: Organization,
    flow_execution_id: Any,
    actor: str,
    only_stale: bool = False,
    only_failed: bool = False,
) -> FlowExecution:
    """Ask the engine to re-run all tasks, only the stale ones, or resume from failure."""
    execution = get_flow_execution(organization=organization, flow_execution_id=flow_execution_id)
    return lifecycle.reexecute_flow_execution(
        execution=execution, actor=actor, only_stale=only_stale, only_failed=only_failed
    )
