"""Concurrency on PostgreSQL with real, separate connections (one per thread).

Each thread closes its connection when done, so the test database can be flushed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from executions.engine import leases, state
from executions.models import TaskExecution
from executions.tests.engine.factories import DIAMOND, Worker, latest, shape_definition, start

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_concurrently(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``count`` threads released together; return results (or errors)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_twenty_identical_reports_make_exactly_one_row(tenant):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    body = {
        "flow_execution_id": str(execution.id),
        "task_name": "a",
        "task_execution_idx": 7,
        "status": "completed",
        "output": {"same": True},
    }

    def post(_: int) -> Any:
        return tenant.client("service").post("/api/task-executions", body, format="json")

    responses = run_concurrently(20, post)
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 200: 19}, codes
    assert len({r.json()["id"] for r in responses}) == 1
    assert (
        TaskExecution.objects.filter(
            flow_execution=execution, task_name="a", task_execution_idx=7
        ).count()
        == 1
    )


def test_concurrent_completions_schedule_downstream_once(tenant):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    worker = Worker(tenant.client("service"))
    (a,) = worker.claim()
    worker.report(a)
    b_and_c = worker.claim()

    def report(i: int) -> Any:
        return Worker(tenant.client("service")).report(b_and_c[i % 2])

    responses = run_concurrently(10, report)
    assert {r.status_code for r in responses} == {200}
    assert TaskExecution.objects.filter(flow_execution=execution, task_name="d").count() == 1


def test_ten_puts_with_the_same_token_one_wins(tenant):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    Worker(tenant.client("service")).run_all()
    a = latest(execution, "a")
    token = tenant.client("user").get(f"/api/task-executions/{a.id}").json()["updated_at"]

    def put(i: int) -> Any:
        return tenant.client("user").put(
            "/api/task-executions",
            {"id": str(a.id), "output": {"writer": i}, "updated_at": token},
            format="json",
        )

    responses = run_concurrently(10, put)
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 1, 409: 9}, codes
    winner = next(r for r in responses if r.status_code == 200).json()
    assert latest(execution, "a").output == winner["output"]


def test_eight_claimers_claim_five_hundred_tasks_exactly_once(tenant):
    shape = {f"t{i:03d}": [] for i in range(500)}
    execution = start(tenant.organization, shape_definition(shape))
    assert TaskExecution.objects.filter(flow_execution=execution, status="queued").count() == 500

    def claimer(i: int) -> list[str]:
        mine: list[str] = []
        while True:
            got = leases.claim_task_executions(
                organization=tenant.organization,
                worker_id=f"w{i}",
                executors=["noop"],
                limit=7,
            )
            if not got:
                return mine
            mine.extend(item["id"] for item in got)

    results = run_concurrently(8, claimer)
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [task_id for ids in results for task_id in ids]
    assert len(claimed) == 500
    assert len(set(claimed)) == 500
    assert sum(1 for ids in results if ids) > 1  # the work was really shared
    owners = dict(
        TaskExecution.objects.filter(flow_execution=execution).values_list("id", "lease_owner")
    )
    for i, ids in enumerate(results):
        assert all(owners[uuid] == f"w{i}" for uuid in map(_uuid, ids))


def test_worker_posts_after_the_report_do_not_wait_for_the_flow_execution_lock(tenant):
    """The task-output post (updating an existing output) and a one-task status batch make
    no scheduling decision: they go through while another transaction holds the flow
    execution's row lock (as a long engine operation would)."""
    execution = start(tenant.organization, shape_definition(DIAMOND))
    worker = Worker(tenant.client("service"))
    (a,) = worker.claim()
    worker.report(a)
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                state.lock_flow_execution(
                    flow_execution_id=execution.id, organization=execution.organization_id
                )
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    fe = str(execution.id)
    output = {"flow_execution_id": fe, "task_name": "a", "summary": {"rows": 1}}
    status = {"statuses": [{"task_name": "a", "status": "completed"}]}

    def post(i: int) -> Any:
        client = tenant.client("service")
        if i == 0:
            return client.post("/api/task-outputs", output, format="json")
        return client.post(f"/api/flow-executions/{fe}/task-status", status, format="json")

    try:
        assert holding.wait(timeout=10)
        began = time.monotonic()
        results = run_concurrently(2, post)
        # Had they waited for the lock, they would answer only when the holder gives up (30 s).
        assert time.monotonic() - began < 20
        assert [r.status_code for r in results] == [200, 200], results
    finally:
        release.set()
        holder.join(timeout=30)


def test_creating_an_output_waits_for_the_flow_execution_lock(tenant):
    """Inserts of outputs all hold the flow execution's lock (the engine's bulk inserts rely
    on it), so a post creating one waits for the engine."""
    execution = start(tenant.organization, shape_definition(DIAMOND))
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                state.lock_flow_execution(
                    flow_execution_id=execution.id, organization=execution.organization_id
                )
                holding.set()
                release.wait(timeout=2)
                order.append("released")
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert holding.wait(timeout=10)
    body = {"flow_execution_id": str(execution.id), "task_name": "d", "summary": {}}
    try:
        response = tenant.client("service").post("/api/task-outputs", body, format="json")
        order.append("posted")
    finally:
        connection.close()
        holder.join(timeout=30)
    assert response.status_code == 201
    assert order == ["released", "posted"]


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)
