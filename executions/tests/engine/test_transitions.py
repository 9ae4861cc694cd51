"""Every transition rule has an accepted and a rejected case (STYLE: PF test_core_policy)."""

from __future__ import annotations

import pytest

from executions.engine import transitions
from executions.engine.events import collecting
from executions.enums import (
    FLOW_EXECUTION_TRANSITIONS,
    TASK_EDIT_TARGETS,
    TASK_EXECUTION_TRANSITIONS,
    FlowExecutionStatus,
    TaskExecutionStatus,
)
from executions.models import FlowExecution, TaskExecution
from executions.tests.engine.factories import create_execution, make_flow, shape_definition
from flowplatform.exceptions import BadRequest, Conflict
from realtime.models import Event

pytestmark = pytest.mark.django_db

TE = TaskExecutionStatus
FE = FlowExecutionStatus


@pytest.fixture
def execution(tenant) -> FlowExecution:
    return create_execution(make_flow(tenant.organization, shape_definition({"a": []})))


def _task(execution: FlowExecution, status: str) -> TaskExecution:
    return TaskExecution.objects.create(
        organization_id=execution.organization_id,
        flow_execution=execution,
        task_name="a",
        task_execution_idx=0,
        status=status,
    )


TASK_CASES = [
    (src, dst, dst in allowed)
    for src, allowed in TASK_EXECUTION_TRANSITIONS.items()
    for dst in TE.values
    if dst != src and src != TE.DELETED
]


@pytest.mark.parametrize(("src", "dst", "allowed"), TASK_CASES)
def test_task_transition_table(execution, src, dst, allowed):
    task = _task(execution, src)
    with collecting():
        if allowed:
            transitions.change_task_status(task, dst, flow_id=execution.flow_id)
        else:
            with pytest.raises(BadRequest):
                transitions.change_task_status(task, dst, flow_id=execution.flow_id)
    task.refresh_from_db()
    assert task.status == (dst if allowed else src)
    assert Event.objects.filter(type="task_execution.updated").count() == int(allowed)


FLOW_CASES = [
    (src, dst, dst in allowed)
    for src, allowed in FLOW_EXECUTION_TRANSITIONS.items()
    for dst in FE.values
    if dst != src
]


@pytest.mark.parametrize(("src", "dst", "allowed"), FLOW_CASES)
def test_flow_transition_table(execution, src, dst, allowed):
    FlowExecution.objects.filter(id=execution.id).update(status=src)
    execution.refresh_from_db()
    if allowed:
        transitions.change_flow_status(execution, dst)
    else:
        with pytest.raises(Conflict):
            transitions.change_flow_status(execution, dst)
    execution.refresh_from_db()
    assert execution.status == (dst if allowed else src)
    assert Event.objects.filter(type="flow_execution.status_changed").count() == int(allowed)


def test_running_stamps_lease_and_terminal_stamps_completion(execution):
    task = _task(execution, TE.QUEUED)
    transitions.change_task_status(task, TE.RUNNING, flow_id=execution.flow_id, worker_id="w")
    assert task.started_at and task.lease_owner == "w" and task.lease_expires_at
    transitions.change_task_status(task, TE.COMPLETED, flow_id=execution.flow_id, output=1)
    task.refresh_from_db()
    assert task.completed_at and task.lease_expires_at is None and task.output == 1


@pytest.mark.parametrize("src", [s for s in TE.values if s != TE.DELETED])
@pytest.mark.parametrize("dst", TE.values)
def test_edit_targets(execution, src, dst):
    task = _task(execution, src)
    if dst in TASK_EDIT_TARGETS or dst == src:
        transitions.check_edit(task, dst)
    else:
        with pytest.raises(BadRequest):
            transitions.check_edit(task, dst)


def test_deleted_task_cannot_be_edited(execution):
    with pytest.raises(BadRequest):
        transitions.check_edit(_task(execution, TE.DELETED), TE.COMPLETED)


def test_a_claim_takes_a_queued_execution_once(execution):
    task = _task(execution, TE.QUEUED)
    candidates = TaskExecution.objects.filter(id=task.id, status=TE.QUEUED).values("id")[:5]
    picked = candidates.query.sql_with_params()
    (claimed,) = transitions.claim(picked, worker_id="w1")
    assert (claimed[0].id, claimed[1], claimed[2]) == (task.id, execution.flow_id, 1)
    assert claimed[0].status == TE.RUNNING and claimed[0].lease_owner == "w1"
    assert transitions.claim(picked, worker_id="w2") == []
    task.refresh_from_db()
    assert (task.status, task.lease_owner) == (TE.RUNNING, "w1")
