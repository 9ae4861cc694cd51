"""Row 8 — worker faults, end to end: a real uvicorn server and real worker processes.

- SIGKILL a worker in the middle of its tasks: every task it held is failed with
  ``LeaseExpired`` once its lease runs out and retried by another worker; the flows complete
  (figure: recovered/total, seconds from the kill to the last flow completed);
- SIGSTOP a worker past its lease, let a rescuer finish the retry, SIGCONT it: the stale
  worker's result is refused (409) and nothing it did after the lease is stored (figure: stale
  results accepted 0);
- a task that kills its own worker every time (``python`` executor,
  ``executions.worker.examples:crash``) fails after its max attempts, the flow fails, and
  nothing is left queued or running.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from executions.models import FlowExecution, TaskExecution
from executions.tests.e2e.conftest import wait_until
from executions.tests.engine.factories import make_flow, shape_definition, start
from flowplatform.tests.reliability.figures import figure
from outputs.models import TaskOutput

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LEASE = 2
TERMINAL = {"completed", "failed", "cancelled"}


def _status(execution: FlowExecution) -> str:
    execution.refresh_from_db()
    return execution.status


def test_sigkilled_worker_s_tasks_are_recovered_after_the_lease(e2e_server, start_worker, tenant):
    lease = LEASE + 1  # heartbeats keep it alive through a 4 s task, even on a loaded machine
    server = e2e_server(lease_seconds=lease)
    definition = shape_definition(
        {f"slow{i}": [] for i in range(3)},
        **{
            f"slow{i}": {"parameters": {"sleep_seconds": 4}, "retries": {"max_attempts": 2}}
            for i in range(3)
        },
    )
    flow = make_flow(tenant.organization, definition)
    executions = [start(tenant.organization, definition, flow=flow) for _ in range(2)]
    victim = start_worker(server, tenant.service_key, concurrency=6, worker_id="victim")
    held = wait_until(
        lambda: (
            (rows := list(TaskExecution.objects.filter(lease_owner="victim", status="running")))
            and len(rows) == 6
            and rows
        ),
        timeout=40,
        what="the victim to hold all six tasks",
    )
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(5)
    killed_at = time.monotonic()
    start_worker(server, tenant.service_key, concurrency=6, worker_id="rescuer")
    wait_until(
        lambda: all(_status(e) in TERMINAL for e in executions),
        timeout=40,
        what="the flows to finish",
    )
    seconds = time.monotonic() - killed_at
    recovered = [
        t
        for t in held
        if TaskExecution.objects.filter(
            flow_execution_id=t.flow_execution_id,
            task_name=t.task_name,
            task_execution_idx=t.task_execution_idx + 1,
            status="completed",
            lease_owner="rescuer",
        ).exists()
    ]
    expired = TaskExecution.objects.filter(
        id__in=[t.id for t in held], status="failed", error__type="LeaseExpired"
    ).count()
    figure(
        8,
        "SIGKILL mid-task",
        recovered=f"{len(recovered)}/{len(held)}",
        lease_expired=expired,
        seconds_to_recover=round(seconds, 1),
        lease_seconds=lease,
    )
    assert [_status(e) for e in executions] == ["completed", "completed"], server.output()
    assert len(recovered) == len(held) == expired == 6


def test_a_worker_stopped_past_its_lease_cannot_report_afterwards(e2e_server, start_worker, tenant):
    lease = LEASE + 2  # the rescuer heartbeats through its 3 s task, even on a loaded machine
    server = e2e_server(lease_seconds=lease)
    definition = shape_definition(
        {"job": []}, job={"parameters": {"sleep_seconds": 3}, "retries": {"max_attempts": 2}}
    )
    execution = start(tenant.organization, definition)
    stale = start_worker(server, tenant.service_key, concurrency=1, worker_id="stale")
    first = wait_until(
        lambda: TaskExecution.objects.filter(
            flow_execution=execution, lease_owner="stale", status="running"
        ).first(),
        timeout=20,
        what="the stale worker to claim",
    )
    os.kill(stale.pid, signal.SIGSTOP)
    try:
        start_worker(server, tenant.service_key, concurrency=1, worker_id="rescuer")
        wait_until(lambda: _status(execution) in TERMINAL, timeout=30, what="the rescue")
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    time.sleep(lease + 1)  # the stale worker wakes up, finishes its sleep and reports
    # The report it would send, sent again explicitly: refused.
    with server.client(tenant.service_key) as http:
        late = http.post(
            "/api/task-executions",
            json={
                "flow_execution_id": str(execution.id),
                "task_name": "job",
                "task_execution_idx": first.task_execution_idx,
                "status": "completed",
                "output": {"from": "stale"},
                "worker_id": "stale",
            },
        )
        heartbeat = http.post(
            f"/api/task-executions/{first.id}/heartbeat", json={"worker_id": "stale"}
        )
    first.refresh_from_db()
    runs = list(
        TaskExecution.objects.filter(flow_execution=execution).order_by("task_execution_idx")
    )
    accepted = [t for t in runs if t.lease_owner == "stale" and t.status == "completed"]
    output = TaskOutput.objects.get(flow_execution=execution, task_name="job")
    figure(
        8,
        "SIGSTOP past the lease, then SIGCONT",
        late_report_status=late.status_code,
        late_heartbeat_status=heartbeat.status_code,
        stale_results_accepted=len(accepted),
        runs=[(t.task_execution_idx, t.lease_owner, t.status) for t in runs],
    )
    assert late.status_code == 409 and heartbeat.status_code == 409
    assert accepted == []
    assert first.status == "failed" and first.error["type"] == "LeaseExpired"
    assert [(t.lease_owner, t.status) for t in runs] == [
        ("stale", "failed"),
        ("rescuer", "completed"),
    ]
    assert _status(execution) == "completed"
    assert output.output != {"from": "stale"}


def test_a_task_that_kills_its_worker_every_time_fails_the_flow(e2e_server, start_worker, tenant):
    server = e2e_server(lease_seconds=LEASE)
    definition = {
        "tasks": [
            {
                "name": "suicidal",
                "task_executor_name": "python",
                "parameters": {"callable": "executions.worker.examples:crash"},
                "retries": {"max_attempts": 3, "backoff_seconds": 0.1},
            },
            {"name": "after", "task_executor_name": "noop", "depends_on": ["suicidal"]},
        ]
    }
    execution = start(tenant.organization, definition)
    crash = ("--python-callable", "executions.worker.examples:crash")
    workers, began = [], time.monotonic()
    while _status(execution) not in TERMINAL and time.monotonic() - began < 60:
        if not workers or workers[-1].poll() is not None:  # a supervisor restarting it
            workers.append(
                start_worker(
                    server, tenant.service_key, *crash, concurrency=1, worker_id=f"w{len(workers)}"
                )
            )
        time.sleep(0.2)
    crashes = sum(1 for w in workers if w.poll() == 137)
    runs = list(
        TaskExecution.objects.filter(flow_execution=execution).order_by("task_execution_idx")
    )
    stuck = TaskExecution.objects.filter(
        flow_execution=execution, status__in=["queued", "running"]
    ).count()
    figure(
        8,
        "a task that kills its worker every time",
        attempts=len(runs),
        worker_crashes=crashes,
        flow=_status(execution),
        stuck=stuck,
        seconds=round(time.monotonic() - began, 1),
    )
    assert _status(execution) == "failed", server.output()
    assert [(t.attempt, t.status, t.error["type"]) for t in runs] == [
        (1, "failed", "LeaseExpired"),
        (2, "failed", "LeaseExpired"),
        (3, "failed", "LeaseExpired"),
    ]
    assert crashes == 3
    assert stuck == 0
    assert not TaskExecution.objects.filter(flow_execution=execution, task_name="after").exists()
