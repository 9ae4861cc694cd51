"""Scheduling: roots first, downstream once every dependency completed, inputs resolved
from upstream outputs, retries with backoff, failing fast, finishing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.engine.factories import (
    DIAMOND,
    Worker,
    latest,
    queued_names,
    refresh,
    shape_definition,
    start,
    statuses,
)
from outputs.models import TaskOutput

pytestmark = pytest.mark.django_db

TE = TaskExecutionStatus
FE = FlowExecutionStatus


def test_start_queues_roots_with_resolved_input(tenant):
    definition = {
        "tasks": [
            {"name": "a", "task_executor_name": "noop", "parameters": {"url": "{{input.url}}"}},
            {"name": "b", "task_executor_name": "noop", "parameters": {"x": "{{a.output}}"}},
        ]
    }
    execution = start(tenant.organization, definition, input={"url": "http://x"})
    a = latest(execution, "a")
    assert (a.status, a.task_execution_idx, a.input) == (TE.QUEUED, 0, {"url": "http://x"})
    assert (a.task_executor_name, a.attempt, a.max_attempts) == ("noop", 1, 1)
    assert latest(execution, "b") is None
    assert refresh(execution).pending_tasks == ["b"]
    assert refresh(execution).started_at is not None


def test_downstream_waits_for_every_dependency(tenant, service_client):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    worker = Worker(service_client)
    (a,) = worker.claim()
    worker.report(a, output={"v": "A"})
    assert queued_names(execution) == {"b", "c"}
    b, c = sorted(worker.claim(), key=lambda t: t["task_name"])
    assert b["input"] == {"task": "b", "from_a": {"v": "A"}}
    worker.report(b, output="B")
    assert queued_names(execution) == set()  # d still needs c
    worker.report(c, output="C")
    (d,) = worker.claim()
    assert d["input"] == {"task": "d", "from_b": "B", "from_c": "C"}
    worker.report(d)
    assert refresh(execution).status == FE.COMPLETED
    assert refresh(execution).completed_at is not None
    outputs = dict(
        TaskOutput.objects.filter(flow_execution=execution).values_list("task_name", "status")
    )
    assert outputs == {name: "completed" for name in DIAMOND}


def test_input_resolution_error_fails_task_and_flow(tenant):
    definition = {
        "tasks": [{"name": "a", "task_executor_name": "noop", "parameters": {"u": "{{input.u}}"}}]
    }
    execution = start(tenant.organization, definition, input={})
    a = latest(execution, "a")
    assert a.status == TE.FAILED
    assert a.error["type"] == "InputResolutionError"
    assert refresh(execution).status == FE.FAILED


def _retrying(max_attempts=3, backoff=10, factor=2):
    retries = {"max_attempts": max_attempts, "backoff_seconds": backoff, "backoff_factor": factor}
    return shape_definition({"a": [], "b": []}, a={"retries": retries})


def test_failed_task_is_retried_with_backoff_then_flow_fails(tenant, service_client):
    execution = start(tenant.organization, _retrying())
    worker = Worker(service_client)
    tasks = {t["task_name"]: t for t in worker.claim()}
    error = {"message": "boom", "type": "RuntimeError", "traceback": ""}
    expected_delays = [10, 20]
    for attempt, delay in enumerate(expected_delays, start=1):
        before = timezone.now()
        assert worker.report(tasks["a"], "failed", error=error).status_code == 200
        retry = latest(execution, "a")
        assert (retry.task_execution_idx, retry.attempt, retry.status) == (
            attempt,
            attempt + 1,
            TE.QUEUED,
        )
        assert retry.input == tasks["a"]["input"]
        assert before + timedelta(seconds=delay - 1) < retry.available_at
        assert retry.available_at < timezone.now() + timedelta(seconds=delay + 1)
        assert worker.claim() == []  # not due yet
        TaskExecution.objects.filter(id=retry.id).update(available_at=timezone.now())
        (tasks["a"],) = worker.claim()
    assert refresh(execution).status == FE.RUNNING
    worker.report(tasks["a"], "failed", error=error)
    assert refresh(execution).status == FE.FAILED
    assert statuses(execution)["a"] == [(0, TE.FAILED), (1, TE.FAILED), (2, TE.FAILED)]
    # b was running: it may finish and report, nothing new is scheduled.
    assert worker.report(tasks["b"]).status_code == 200
    assert refresh(execution).status == FE.FAILED


def test_fail_fast_cancels_waiting_tasks(tenant, service_client):
    execution = start(tenant.organization, shape_definition({"a": [], "b": [], "c": ["b"]}))
    worker = Worker(service_client)
    tasks = {t["task_name"]: t for t in worker.claim(limit=1)}
    assert set(tasks) == {"a"}
    worker.report(tasks["a"], "failed", error={"message": "x", "type": "E", "traceback": ""})
    assert refresh(execution).status == FE.FAILED
    assert latest(execution, "b").status == TE.CANCELLED
    assert latest(execution, "c") is None
    assert refresh(execution).pending_tasks == []


def test_human_review_waits_for_input_and_is_never_claimed(tenant, service_client):
    definition = shape_definition(
        {"a": [], "review": ["a"]},
        review={"task_executor_name": "human_review", "parameters": {"instructions": "look"}},
    )
    execution = start(tenant.organization, definition)
    worker = Worker(service_client)
    worker.run_all()
    review = latest(execution, "review")
    assert review.status == TE.AWAITING_INPUT
    assert worker.claim(executors=["human_review", "noop"]) == []
    assert refresh(execution).status == FE.RUNNING


def test_reporting_a_queued_task_completed_directly_is_fine(tenant, service_client):
    execution = start(tenant.organization, shape_definition({"a": [], "b": ["a"]}))
    a = latest(execution, "a")
    response = Worker(service_client).report(
        {"flow_execution_id": str(execution.id), "task_name": "a", "task_execution_idx": 0},
        output=5,
    )
    assert response.status_code == 200
    assert latest(execution, "a").id == a.id
    assert latest(execution, "b").input == {"task": "b", "from_a": 5}


def test_task_reported_cancelled_cancels_flow(tenant, service_client):
    execution = start(tenant.organization, shape_definition({"a": [], "b": []}))
    worker = Worker(service_client)
    tasks = {t["task_name"]: t for t in worker.claim()}
    worker.report(tasks["a"], "cancelled")
    assert refresh(execution).status == FE.CANCEL_REQUESTED
    assert latest(execution, "b").cancel_requested
    worker.report(tasks["b"], "cancelled")
    assert refresh(execution).status == FE.CANCELLED
