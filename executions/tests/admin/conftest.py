"""Fixtures for the admin tests: a logged-in staff superuser and data in two organizations.

``bulk_world`` makes many rows quickly (flows through the flows service, the rest with the
ORM at their default statuses: the admin only reads them). ``live_world`` drives real
executions through the services and the engine, for the actions and the screenshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

import pytest
from django.test import Client

from executions.models import Flow, FlowExecution, TaskExecution, TaskStatus
from executions.services import flows
from flowplatform.models import Organization
from flowplatform.services import get_or_create_user
from outputs.models import TaskOutput
from realtime.models import Event

ONE_TASK = {"tasks": [{"name": "only", "task_executor_name": "noop"}]}

_seq = count(1_000_000)


@pytest.fixture
def staff_user(db):  # noqa: ANN001, ANN201
    user = get_or_create_user(username="staff", password="staff-password", is_staff=True)
    assert user.is_superuser and user.is_staff
    return user


@pytest.fixture
def staff_client(staff_user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(staff_user)
    return client


@dataclass
class BulkWorld:
    organizations: list[Organization]
    flows: list[Flow] = field(default_factory=list)
    executions: list[FlowExecution] = field(default_factory=list)


def make_bulk_world(organizations: list[Organization], rows: int) -> BulkWorld:
    """``rows`` flow executions spread over the organizations, each with one task execution,
    one task output, one status report and one event; one flow per organization."""
    world = BulkWorld(organizations)
    for org in organizations:
        world.flows.append(
            flows.create_flow(
                organization=org, actor="test", display_name=f"{org.name} flow", definition=ONE_TASK
            )
        )
    executions = [
        FlowExecution(
            organization_id=world.flows[i % len(world.flows)].organization_id,
            flow=world.flows[i % len(world.flows)],
            flow_version=1,
            input={"n": i},
        )
        for i in range(rows)
    ]
    world.executions = FlowExecution.objects.bulk_create(executions)
    TaskExecution.objects.bulk_create(
        TaskExecution(
            organization_id=fe.organization_id,
            flow_execution=fe,
            task_name="only",
            task_execution_idx=0,
            task_executor_name="noop",
            input={"n": i},
        )
        for i, fe in enumerate(world.executions)
    )
    TaskOutput.objects.bulk_create(
        TaskOutput(
            organization_id=fe.organization_id,
            flow_execution=fe,
            flow_version=1,
            task_name="only",
            summary={"rows": i},
        )
        for i, fe in enumerate(world.executions)
    )
    TaskStatus.objects.bulk_create(
        TaskStatus(
            organization_id=fe.organization_id,
            flow_execution=fe,
            task_name="only",
            status="working",
            seq=next(_seq),
        )
        for fe in world.executions
    )
    Event.objects.bulk_create(
        Event(
            type="flow_execution.created",
            organization_id=fe.organization_id,
            flow_id=fe.flow_id,
            flow_execution_id=fe.id,
            data={"id": str(fe.id)},
        )
        for fe in world.executions
    )
    return world


@pytest.fixture
def bulk_world(tenant, outsider) -> Callable[[int], BulkWorld]:  # noqa: ANN001
    return lambda rows: make_bulk_world([tenant.organization, outsider.organization], rows)
