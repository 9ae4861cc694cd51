"""Cancel, re-execute (all, only_stale, only_failed), delete and the per-organization cap."""

from __future__ import annotations

import pytest

from executions.engine import lifecycle
from executions.enums import FlowExecutionStatus, StaleStatus, TaskExecutionStatus
from executions.tests.engine.factories import (
    DIAMOND,
    Worker,
    create_execution,
    latest,
    make_flow,
    queued_names,
    refresh,
    shape_definition,
    start,
    statuses,
)
from flowplatform.exceptions import BadRequest, Conflict
from flowplatform.services import create_organization

pytestmark = pytest.mark.django_db

TE = TaskExecutionStatus
FE = FlowExecutionStatus


def test_cancel_queued_and_running(tenant, service_client):
    execution = start(tenant.organization, shape_definition({"a": [], "b": [], "c": ["a"]}))
    worker = Worker(service_client)
    (a,) = worker.claim(limit=1)
    lifecycle.cancel_flow_execution(execution=execution, actor="u1")
    execution = refresh(execution)
    assert execution.status == FE.CANCEL_REQUESTED
    assert execution.modified_by == "u1"
    assert latest(execution, "b").status == TE.CANCELLED
    assert latest(execution, "a").cancel_requested
    heartbeat = service_client.post(
        f"/api/task-executions/{a['id']}/heartbeat", {"worker_id": "worker-1"}, format="json"
    )
    assert heartbeat.json()["cancel_requested"] is True
    assert worker.claim() == []
    worker.report(a, "cancelled")
    assert refresh(execution).status == FE.CANCELLED
    assert latest(execution, "c") is None
    # Idempotent; a finished one cannot be cancelled.
    lifecycle.cancel_flow_execution(execution=execution, actor="u1")
    done = start(tenant.organization, shape_definition({"z": []}))
    worker.run_all()
    with pytest.raises(Conflict):
        lifecycle.cancel_flow_execution(execution=refresh(done), actor="u1")


def test_cancel_without_running_tasks_is_immediate(tenant):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    lifecycle.cancel_flow_execution(execution=execution, actor="u1")
    assert refresh(execution).status == FE.CANCELLED
    assert latest(execution, "a").status == TE.CANCELLED


def test_running_task_finishing_after_cancel_completes_cancellation(tenant, service_client):
    execution = start(tenant.organization, shape_definition({"a": [], "b": ["a"]}))
    worker = Worker(service_client)
    (a,) = worker.claim()
    lifecycle.cancel_flow_execution(execution=execution, actor="u1")
    assert worker.report(a).status_code == 200  # it finished anyway
    assert refresh(execution).status == FE.CANCELLED
    assert latest(execution, "b") is None


def _finished_diamond(tenant, service_client, *, fail=()):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    Worker(service_client).run_all(fail=fail)
    return refresh(execution)


def test_reexecute_everything(tenant, service_client):
    execution = _finished_diamond(tenant, service_client)
    lifecycle.reexecute_flow_execution(execution=execution, actor="u1")
    assert refresh(execution).status == FE.RUNNING
    assert queued_names(execution) == {"a"}
    assert latest(execution, "a").task_execution_idx == 1
    Worker(service_client).run_all()
    assert refresh(execution).status == FE.COMPLETED
    assert {name: [i for i, _ in rows] for name, rows in statuses(execution).items()} == {
        name: [0, 1] for name in DIAMOND
    }


def test_reexecute_only_failed_resumes_from_failure(tenant, service_client):
    execution = _finished_diamond(tenant, service_client, fail=("b",))
    assert execution.status == FE.FAILED
    before = statuses(execution)
    lifecycle.reexecute_flow_execution(execution=execution, actor="u1", only_failed=True)
    Worker(service_client).run_all()
    after = statuses(execution)
    assert refresh(execution).status == FE.COMPLETED
    assert after["a"] == before["a"]  # completed: not redone
    assert after["b"][-1] == (1, TE.COMPLETED)
    assert after["d"][-1][1] == TE.COMPLETED


def test_reexecute_while_running_conflicts(tenant):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    with pytest.raises(Conflict):
        lifecycle.reexecute_flow_execution(execution=execution, actor="u1")
    with pytest.raises(BadRequest):
        lifecycle.reexecute_flow_execution(
            execution=execution, actor="u1", only_stale=True, only_failed=True
        )


def test_reexecute_only_stale_with_nothing_stale_changes_nothing(tenant, service_client):
    execution = _finished_diamond(tenant, service_client)
    lifecycle.reexecute_flow_execution(execution=execution, actor="u1", only_stale=True)
    assert refresh(execution).status == FE.COMPLETED
    assert queued_names(execution) == set()


def test_delete_cancels_waiting_work(tenant, service_client):
    execution = start(tenant.organization, shape_definition({"a": [], "b": []}))
    (a,) = Worker(service_client).claim(limit=1)
    lifecycle.delete_flow_execution(execution=execution, actor="u1")
    assert refresh(execution).status == FE.DELETED
    assert latest(execution, "b").status == TE.CANCELLED
    assert latest(execution, "a").cancel_requested
    assert Worker(service_client).report(a).status_code == 404


# -- the per-organization cap ------------------------------------------------------------------


def test_cap_keeps_extra_executions_queued_and_starts_them_in_order(service_client, tenant):
    org = tenant.organization
    org.max_concurrent_executions = 2
    org.save()
    flow = make_flow(org, shape_definition({"a": []}))
    executions = [
        lifecycle.start_flow_execution(execution=create_execution(flow), actor="s")
        for _ in range(5)
    ]
    assert [refresh(e).status for e in executions] == [FE.RUNNING] * 2 + [FE.QUEUED] * 3
    # Another organization is not affected.
    other = create_organization(name="other-org", max_concurrent_executions=1)
    other_execution = start(other, shape_definition({"a": []}))
    assert other_execution.status == FE.RUNNING
    worker = Worker(service_client)
    first = worker.claim(limit=1)[0]
    assert first["flow_execution_id"] == str(executions[0].id)
    worker.report(first)
    assert [refresh(e).status for e in executions] == [
        FE.COMPLETED,
        FE.RUNNING,
        FE.RUNNING,
        FE.QUEUED,
        FE.QUEUED,
    ]
    worker.run_all()
    executions = [refresh(e) for e in executions]
    assert all(e.status == FE.COMPLETED for e in executions)
    started = [e.started_at for e in executions]
    assert started == sorted(started)


def test_cancelling_a_queued_execution_keeps_it_out(tenant):
    org = tenant.organization
    org.max_concurrent_executions = 1
    org.save()
    flow = make_flow(org, shape_definition({"a": []}))
    first = lifecycle.start_flow_execution(execution=create_execution(flow), actor="s")
    second = lifecycle.start_flow_execution(execution=create_execution(flow), actor="s")
    assert refresh(second).status == FE.QUEUED
    lifecycle.cancel_flow_execution(execution=second, actor="u")
    assert refresh(second).status == FE.CANCELLED
    lifecycle.cancel_flow_execution(execution=first, actor="u")
    assert refresh(second).status == FE.CANCELLED


def test_start_is_idempotent(tenant):
    execution = start(tenant.organization, shape_definition({"a": []}))
    lifecycle.start_flow_execution(execution=execution, actor="s")
    assert statuses(execution) == {"a": [(0, TE.QUEUED)]}
    assert latest(execution, "a").stale_status == StaleStatus.CONSISTENT


def test_capped_execution_with_a_reported_task_starts_at_the_next_index(tenant, service_client):
    org = tenant.organization
    org.max_concurrent_executions = 1
    org.save()
    flow = make_flow(org, shape_definition({"a": [], "b": ["a"]}))
    first = lifecycle.start_flow_execution(execution=create_execution(flow), actor="s")
    waiting = lifecycle.start_flow_execution(execution=create_execution(flow), actor="s")
    report = {
        "flow_execution_id": str(waiting.id),
        "task_name": "a",
        "task_execution_idx": 0,
        "status": "completed",
        "output": 1,
    }
    assert service_client.post("/api/task-executions", report, format="json").status_code == 201
    assert refresh(waiting).status == FE.QUEUED
    lifecycle.cancel_flow_execution(execution=first, actor="u")
    assert refresh(waiting).status == FE.RUNNING
    assert statuses(waiting)["a"] == [(0, TE.COMPLETED), (1, TE.QUEUED)]
