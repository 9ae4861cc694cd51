"""The worker protocol: claim, heartbeat, release, expired leases, executor catalogue."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from executions.engine import leases, lifecycle
from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.engine.factories import (
    Worker,
    latest,
    refresh,
    shape_definition,
    start,
    statuses,
)
from executions.worker.specs import BUILTIN_EXECUTORS

pytestmark = pytest.mark.django_db

TE = TaskExecutionStatus
FE = FlowExecutionStatus
CLAIM = "/api/task-executions/claim"


def claim(client, **body):
    payload = {"worker_id": "w1", "executors": ["noop"], "limit": 10, **body}
    return client.post(CLAIM, payload, format="json")


def beat(client, task_id, worker_id="w1"):
    return client.post(
        f"/api/task-executions/{task_id}/heartbeat", {"worker_id": worker_id}, format="json"
    )


def release(client, task_id, worker_id="w1"):
    return client.post(
        f"/api/task-executions/{task_id}/release", {"worker_id": worker_id}, format="json"
    )


@pytest.fixture
def execution(tenant):
    return start(tenant.organization, shape_definition({"a": [], "b": [], "c": ["a"]}))


def test_claim_sets_running_and_lease(service_client, execution, settings):
    settings.FLOWPLATFORM_LEASE_SECONDS = 7
    response = claim(service_client, limit=1)
    assert response.status_code == 200
    (item,) = response.json()["task_executions"]
    assert item["status"] == "running" and item["task_name"] == "a"
    assert item["task_executor_name"] == "noop"
    assert item["lease_seconds"] == 7 and item["lease_expires_at"]
    assert (item["attempt"], item["max_attempts"], item["timeout_seconds"]) == (1, 1, None)
    assert item["flow_id"] == str(execution.flow_id)
    assert item["input"] == {"task": "a"}
    task = latest(execution, "a")
    assert task.lease_owner == "w1" and task.started_at
    assert timedelta(seconds=6) < task.lease_expires_at - timezone.now() <= timedelta(seconds=7)
    assert [t["task_name"] for t in claim(service_client).json()["task_executions"]] == ["b"]
    assert claim(service_client).json()["task_executions"] == []


def test_claim_makes_the_outputs_running_with_their_events(
    service_client, execution, django_capture_on_commit_callbacks
):
    from outputs.models import TaskOutput
    from outputs.representations import task_output_data
    from realtime.models import Event

    before = Event.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        (item,) = claim(service_client, limit=1).json()["task_executions"]
    output = TaskOutput.objects.get(flow_execution=execution, task_name="a")
    assert output.status == "running"
    # b is still queued; c (not queued yet) has no output
    assert TaskOutput.objects.get(flow_execution=execution, task_name="b").status == "queued"
    events = list(Event.objects.order_by("id")[before:])
    assert [(e.type, e.task_name) for e in events] == [
        ("task_execution.updated", "a"),
        ("task_output.updated", "a"),
    ]
    assert events[0].data["status"] == "running" and events[0].data["id"] == item["id"]
    assert events[1].data == task_output_data(output)


def test_claim_leaves_a_soft_deleted_output_alone(service_client, execution):
    from outputs.models import TaskOutput

    TaskOutput.objects.filter(flow_execution=execution, task_name="a").update(status="deleted")
    claim(service_client, limit=1)
    assert TaskOutput.objects.get(flow_execution=execution, task_name="a").status == "deleted"


def test_claim_only_own_organization_and_listed_executors(service_client, outsider, execution):
    assert claim(outsider.client("service")).json()["task_executions"] == []
    assert claim(service_client, executors=["python"]).json()["task_executions"] == []
    assert len(claim(service_client, executors=["python", "noop"]).json()["task_executions"]) == 2


def test_claim_skips_tasks_not_yet_due(service_client, execution):
    TaskExecution.objects.filter(flow_execution=execution).update(
        available_at=timezone.now() + timedelta(minutes=1)
    )
    assert claim(service_client).json()["task_executions"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 51},
        {"wait_seconds": 31},
        {"wait_seconds": -1},
        {"executors": []},
        {"worker_id": ""},
    ],
)
def test_claim_validation(service_client, execution, body):
    assert claim(service_client, **body).status_code == 422


def test_worker_endpoints_need_a_service_key(user_client, anon_client, execution):
    assert claim(user_client).status_code == 403
    assert claim(anon_client).status_code == 401
    task = latest(execution, "a")
    assert beat(user_client, task.id).status_code == 403
    assert release(user_client, task.id).status_code == 403


def test_long_poll_waits_then_answers_empty(service_client, execution):
    claim(service_client)
    started = time.monotonic()
    response = claim(service_client, wait_seconds=0.6)
    assert response.status_code == 200
    assert response.json() == {"task_executions": []}
    assert 0.5 < time.monotonic() - started < 3


def test_heartbeat_extends_lease_and_reports_cancellation(service_client, execution):
    (item,) = claim(service_client, limit=1).json()["task_executions"]
    before = latest(execution, "a").lease_expires_at
    time.sleep(0.01)
    answer = beat(service_client, item["id"])
    assert answer.status_code == 200
    assert answer.json()["cancel_requested"] is False
    assert latest(execution, "a").lease_expires_at > before
    assert beat(service_client, item["id"], "someone-else").status_code == 409
    assert beat(service_client, uuid.uuid4()).status_code == 404
    lifecycle.cancel_flow_execution(execution=execution, actor="u")
    assert beat(service_client, item["id"]).json()["cancel_requested"] is True


def test_heartbeat_after_finish_is_409(service_client, execution):
    worker = Worker(service_client, "w1")
    (item,) = worker.claim(limit=1)
    worker.report(item)
    assert beat(service_client, item["id"]).status_code == 409


def test_release_requeues_without_using_an_attempt(service_client, execution):
    (item,) = claim(service_client, limit=1).json()["task_executions"]
    assert release(service_client, item["id"], "other").status_code == 409
    response = release(service_client, item["id"])
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    task = latest(execution, "a")
    assert (task.task_execution_idx, task.attempt, task.lease_owner) == (0, 1, None)
    again = claim(service_client, worker_id="w2", limit=1).json()["task_executions"]
    assert again[0]["id"] == item["id"]
    assert release(service_client, item["id"]).status_code == 409


def test_release_after_cancel_cancels(service_client, execution):
    items = claim(service_client).json()["task_executions"]
    lifecycle.cancel_flow_execution(execution=execution, actor="u")
    for item in items:
        assert release(service_client, item["id"]).json()["status"] == "cancelled"
    assert refresh(execution).status == FE.CANCELLED


def _expire(task_id):
    TaskExecution.objects.filter(id=task_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_expired_lease_fails_task_and_retries(tenant, service_client):
    retries = {"max_attempts": 2, "backoff_seconds": 0}
    execution = start(tenant.organization, shape_definition({"a": []}, a={"retries": retries}))
    lost = Worker(service_client, "lost")
    (item,) = lost.claim()
    _expire(item["id"])
    assert leases.sweep_expired_leases() == 1
    failed = TaskExecution.objects.get(id=item["id"])
    assert failed.status == TE.FAILED and failed.error["type"] == "LeaseExpired"
    retry = latest(execution, "a")
    assert (retry.task_execution_idx, retry.attempt, retry.status) == (1, 2, TE.QUEUED)
    # The worker that lost the lease wakes up: everything it says is refused.
    assert lost.report(item).status_code == 409
    assert beat(service_client, item["id"], "lost").status_code == 409
    assert TaskExecution.objects.get(id=item["id"]).status == TE.FAILED
    Worker(service_client, "new").run_all()
    assert refresh(execution).status == FE.COMPLETED
    assert statuses(execution)["a"] == [(0, TE.FAILED), (1, TE.COMPLETED)]


def test_expired_lease_on_last_attempt_fails_flow(service_client, execution):
    (item,) = claim(service_client, limit=1).json()["task_executions"]
    _expire(item["id"])
    leases.sweep_expired_leases()
    assert refresh(execution).status == FE.FAILED


def test_claim_sweeps_expired_leases(tenant, service_client, execution):
    from executions.engine import leases

    (item,) = claim(service_client, limit=1).json()["task_executions"]
    _expire(item["id"])
    leases._last_sweep.clear()
    claim(service_client)
    assert TaskExecution.objects.get(id=item["id"]).status == TE.FAILED


def test_heartbeat_keeps_a_lease_from_expiring(service_client, execution):
    (item,) = claim(service_client, limit=1).json()["task_executions"]
    beat(service_client, item["id"])
    assert leases.sweep_expired_leases() == 0


def test_sweepleases_command(service_client, execution):
    from django.core.management import call_command

    (item,) = claim(service_client, limit=1).json()["task_executions"]
    _expire(item["id"])
    call_command("sweepleases")
    assert TaskExecution.objects.get(id=item["id"]).status == TE.FAILED


def test_task_executors_catalogue(user_client, service_client, anon_client):
    response = user_client.get("/api/task-executors")
    assert response.status_code == 200
    by_name = {e["name"]: e for e in response.json()}
    assert set(by_name) == set(BUILTIN_EXECUTORS)
    assert by_name["http_request"]["parameters_schema"]["required"] == ["url"]
    assert by_name["human_review"]["claimable"] is False
    assert service_client.get("/api/task-executors").status_code == 200
    assert anon_client.get("/api/task-executors").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_long_poll_wakes_up_when_work_is_queued(tenant):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("needs a database shared between threads")
    client = tenant.client("service")
    flow_definition = shape_definition({"a": []})
    answer: dict = {}

    def waiter():
        started = time.monotonic()
        answer["response"] = claim(client, wait_seconds=10)
        answer["elapsed"] = time.monotonic() - started
        connection.close()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.5)
    start(tenant.organization, flow_definition)
    thread.join(15)
    assert answer["response"].status_code == 200
    assert len(answer["response"].json()["task_executions"]) == 1
    assert answer["elapsed"] < 3
