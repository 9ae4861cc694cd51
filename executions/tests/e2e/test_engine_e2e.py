"""End to end: a real uvicorn server, real worker processes, the test database.

Flows are created and started in this process (the engine functions the API calls); the
workers claim, run and report over HTTP; people edit over HTTP.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from executions.engine import lifecycle
from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from executions.tests.e2e.conftest import wait_until
from executions.tests.engine.factories import (
    DIAMOND,
    create_execution,
    latest,
    make_flow,
    refresh,
    shape_definition,
    start,
    statuses,
)
from outputs.models import TaskOutput

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TE = TaskExecutionStatus
FE = FlowExecutionStatus


def finished(execution: FlowExecution, *, timeout: float = 20) -> FlowExecution:
    terminal = {FE.COMPLETED, FE.FAILED, FE.CANCELLED, FE.STALE}
    wait_until(lambda: refresh(execution).status in terminal, timeout=timeout, what="the flow")
    return refresh(execution)


RICH = {
    "src": [],
    "l1a": ["src"],
    "l1b": ["src"],
    "l1c": ["src"],
    "m1": ["l1a", "l1b"],
    "m2": ["l1b", "l1c"],
    "j": ["m1", "m2"],
    "k1": ["src", "j"],
    "k2": ["j"],
    "sink": ["k1", "k2"],
}


def test_ten_task_dag_completes(e2e_server, start_worker, tenant):
    server = e2e_server()
    start_worker(server, tenant.service_key, concurrency=3)
    start_worker(server, tenant.service_key, concurrency=3)
    execution = start(tenant.organization, shape_definition(RICH), input={"n": 1})
    assert finished(execution).status == FE.COMPLETED, server.output()
    runs = statuses(execution)
    assert runs == {name: [(0, TE.COMPLETED)] for name in RICH}
    sink = latest(execution, "sink")
    assert sink.input["from_k1"]["from_src"] == {"task": "src"}
    order = {t.task_name: t for t in TaskExecution.objects.filter(flow_execution=execution)}
    for name, deps in RICH.items():  # nothing started before its dependencies completed
        for dep in deps:
            assert order[dep].completed_at <= order[name].created_at
    assert TaskOutput.objects.filter(flow_execution=execution).count() == 10


def test_failing_task_is_retried_then_fails_the_flow(e2e_server, start_worker, tenant):
    server = e2e_server()
    start_worker(server, tenant.service_key)
    definition = {
        "tasks": [
            {
                "name": "flaky",
                "task_executor_name": "python",
                "parameters": {"callable": "executions.worker.examples:fail"},
                "retries": {"max_attempts": 3, "backoff_seconds": 0.2, "backoff_factor": 2},
            },
            {"name": "after", "task_executor_name": "noop", "depends_on": ["flaky"]},
        ]
    }
    execution = start(tenant.organization, definition)
    assert finished(execution).status == FE.FAILED, server.output()
    attempts = list(
        TaskExecution.objects.filter(flow_execution=execution, task_name="flaky").order_by(
            "task_execution_idx"
        )
    )
    assert [(t.task_execution_idx, t.attempt, t.status) for t in attempts] == [
        (0, 1, TE.FAILED),
        (1, 2, TE.FAILED),
        (2, 3, TE.FAILED),
    ]
    assert {t.error["type"] for t in attempts} == {"RuntimeError"}
    gaps = [
        later.created_at - earlier.completed_at
        for earlier, later in zip(attempts, attempts[1:], strict=False)
    ]
    assert all(gap.total_seconds() < 5 for gap in gaps)
    assert (
        attempts[2].available_at - attempts[1].completed_at
        >= attempts[1].available_at - attempts[0].completed_at
    )
    assert latest(execution, "after") is None


def test_human_review_blocks_until_a_person_submits(e2e_server, start_worker, tenant):
    server = e2e_server()
    start_worker(server, tenant.service_key)
    definition = shape_definition(
        {"draft": [], "review": ["draft"], "publish": ["review"]},
        review={"task_executor_name": "human_review", "parameters": {"instructions": "ok?"}},
    )
    execution = start(tenant.organization, definition)
    review = wait_until(
        lambda: (t := latest(execution, "review")) and t.status == TE.AWAITING_INPUT and t,
        what="the review task",
    )
    time.sleep(1)  # workers keep claiming: the review is never taken
    assert latest(execution, "review").status == TE.AWAITING_INPUT
    assert latest(execution, "publish") is None
    with server.client(tenant.user_key) as client:
        response = client.put(
            "/api/task-executions",
            json={"id": str(review.id), "status": "completed", "output": {"approved": True}},
        )
    assert response.status_code == 200, response.text
    assert finished(execution).status == FE.COMPLETED, server.output()
    assert latest(execution, "publish").input["from_review"] == {"approved": True}


def test_cancel_mid_run_stops_new_work(e2e_server, start_worker, tenant):
    server = e2e_server(lease_seconds=3)  # heartbeats every second
    start_worker(server, tenant.service_key)
    definition = shape_definition(
        {"slow1": [], "slow2": [], "next": ["slow1", "slow2"]},
        slow1={"parameters": {"sleep_seconds": 20}},
        slow2={"parameters": {"sleep_seconds": 20}},
    )
    execution = start(tenant.organization, definition)
    wait_until(
        lambda: (
            TaskExecution.objects.filter(flow_execution=execution, status=TE.RUNNING).count() == 2
        ),
        what="both slow tasks running",
    )
    began = time.monotonic()
    lifecycle.cancel_flow_execution(execution=execution, actor="person")
    assert refresh(execution).status == FE.CANCEL_REQUESTED
    assert finished(execution, timeout=15).status == FE.CANCELLED, server.output()
    assert time.monotonic() - began < 10
    assert {latest(execution, n).status for n in ("slow1", "slow2")} == {TE.CANCELLED}
    assert latest(execution, "next") is None


def test_only_stale_reexecution_reruns_exactly_the_stale_tasks(e2e_server, start_worker, tenant):
    server = e2e_server()
    start_worker(server, tenant.service_key)
    shape = {**DIAMOND, "x": [], "y": ["x"]}
    execution = start(tenant.organization, shape_definition(shape))
    assert finished(execution).status == FE.COMPLETED, server.output()
    b = latest(execution, "b")
    with server.client(tenant.user_key) as client:
        response = client.put("/api/task-executions", json={"id": str(b.id), "output": "B*"})
    assert response.status_code == 200, response.text
    assert refresh(execution).status == FE.STALE
    lifecycle.reexecute_flow_execution(execution=execution, actor="person", only_stale=True)
    assert finished(execution).status == FE.COMPLETED, server.output()
    indexes = {name: [i for i, _ in runs] for name, runs in statuses(execution).items()}
    assert indexes == {"a": [0], "b": [0], "c": [0], "d": [0, 1], "x": [0], "y": [0]}
    assert latest(execution, "d").input["from_b"] == "B*"


def test_killed_worker_task_is_retried_after_lease_expiry(e2e_server, start_worker, tenant):
    server = e2e_server(lease_seconds=2)
    definition = shape_definition(
        {"long": [], "after": ["long"]},
        long={"parameters": {"sleep_seconds": 3}, "retries": {"max_attempts": 2}},
    )
    victim = start_worker(server, tenant.service_key, concurrency=1, worker_id="victim")
    execution = start(tenant.organization, definition)
    wait_until(
        lambda: (t := latest(execution, "long")) and t.lease_owner == "victim",
        what="the victim to hold the task",
    )
    time.sleep(1.5)  # it heartbeats: the lease is still alive beyond its first 2 s
    assert latest(execution, "long").status == TE.RUNNING
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(5)
    start_worker(server, tenant.service_key, concurrency=1, worker_id="rescuer")
    assert finished(execution, timeout=20).status == FE.COMPLETED, server.output()
    runs = list(
        TaskExecution.objects.filter(flow_execution=execution, task_name="long").order_by(
            "task_execution_idx"
        )
    )
    assert [(t.status, t.lease_owner) for t in runs] == [
        (TE.FAILED, "victim"),
        (TE.COMPLETED, "rescuer"),
    ]
    assert runs[0].error["type"] == "LeaseExpired"
    outputs = TaskOutput.objects.filter(flow_execution=execution)
    assert sorted(outputs.values_list("task_name", flat=True)) == ["after", "long"]
    assert outputs.get(task_name="long").status == "completed"


def test_concurrency_cap_holds_and_starts_in_creation_order(e2e_server, start_worker, tenant):
    from flowplatform.services import create_api_key, create_organization

    org = tenant.organization
    org.max_concurrent_executions = 2
    org.save()
    other = create_organization(name="e2e-other", max_concurrent_executions=2)
    _, other_key = create_api_key(organization=other, kind="service")
    server = e2e_server()
    start_worker(server, tenant.service_key, concurrency=4)
    start_worker(server, other_key, concurrency=4)
    definition = shape_definition({"t": []}, t={"parameters": {"sleep_seconds": 0.8}})
    flow = make_flow(org, definition)
    executions = [
        lifecycle.start_flow_execution(execution=create_execution(flow), actor="s")
        for _ in range(5)
    ]
    other_execution = start(other, definition)
    assert other_execution.status == FE.RUNNING  # not queued behind the first organization
    most = 0
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        running = FlowExecution.objects.filter(organization=org, status=FE.RUNNING).count()
        most = max(most, running)
        if all(refresh(e).status == FE.COMPLETED for e in executions):
            break
        time.sleep(0.05)
    executions = [refresh(e) for e in executions]
    assert [e.status for e in executions] == [FE.COMPLETED] * 5, server.output()
    assert most == 2
    started = [e.started_at for e in executions]
    assert started == sorted(started)
    other_execution = refresh(other_execution)
    assert other_execution.status == FE.COMPLETED
    # The other organization never queued; the capped one's last execution waited its turn.
    assert (other_execution.started_at - other_execution.created_at).total_seconds() < 0.5
    assert (executions[4].started_at - executions[4].created_at).total_seconds() > 1.2
