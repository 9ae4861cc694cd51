"""Builders for flows and flow executions, through the services (never raw status writes)."""

from __future__ import annotations

import copy
from typing import Any

from executions.models import Flow, FlowExecution
from executions.services.flow_executions import create_flow_execution
from executions.services.flows import create_flow
from flowplatform.models import Organization

# a → (b, c) → d: the smallest diamond, all noop.
DIAMOND: dict[str, Any] = {
    "tasks": [
        {"name": "a", "task_executor_name": "noop"},
        {"name": "b", "task_executor_name": "noop", "depends_on": ["a"]},
        {"name": "c", "task_executor_name": "noop", "depends_on": ["a"]},
        {"name": "d", "task_executor_name": "noop", "depends_on": ["b", "c"]},
    ]
}

TWO_STEPS: dict[str, Any] = {
    "tasks": [
        {"name": "first", "task_executor_name": "noop"},
        {"name": "second", "task_executor_name": "noop", "depends_on": ["first"]},
    ]
}


def make_flow(
    organization: Organization,
    *,
    display_name: str = "Flow",
    definition: Any = None,
    actor: str = "test",
    **kwargs: Any,
) -> Flow:
    return create_flow(
        organization=organization,
        actor=actor,
        display_name=display_name,
        definition=copy.deepcopy(DIAMOND if definition is None else definition),
        **kwargs,
    )


def make_flow_execution(flow: Flow, *, input: Any = None, actor: str = "test") -> FlowExecution:
    return create_flow_execution(
        organization=flow.organization, actor=actor, flow_id=flow.id, input=input
    )
