"""Worker reports decided as a batch (``reports.decide_reports``): one transaction for the
reports of one flow execution, each caller getting its own outcome.

Outside the test's transaction (``transaction=True``), as a request runs them."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions.engine import reports
from executions.engine.group_commit import Entry
from executions.enums import TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.engine.factories import (
    DIAMOND,
    Worker,
    completed_report,
    latest,
    shape_definition,
    start,
)
from executions.tests.services.batching import decide
from flowplatform.authentication import principal_for_key
from flowplatform.exceptions import BadRequest, Conflict
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
TE = TaskExecutionStatus
MIDDLE = [f"t{i}" for i in range(12)]


def b_and_c_running(tenant):  # noqa: ANN001, ANN201
    execution = start(tenant.organization, shape_definition(DIAMOND))
    worker = Worker(tenant.client("service"))
    (a,) = worker.claim()
    assert worker.report(a).status_code == 200
    b, c = sorted(worker.claim(), key=lambda t: t["task_name"])
    return execution, b, c


def report_all_at_once(tenant, tasks: list[dict[str, Any]]) -> Counter[int]:  # noqa: ANN001
    """Report each task completed over the API, from one thread each, all at once: the
    status codes answered."""
    barrier = threading.Barrier(len(tasks))
    codes: list[int] = []

    def post(task: dict[str, Any]) -> None:
        try:
            barrier.wait(10)
            codes.append(Worker(tenant.client("service")).report(task).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return Counter(codes)


def updates_of(execution, name: str) -> list[str]:  # noqa: ANN001
    return [
        event.data["status"]
        for event in Event.objects.filter(
            flow_execution_id=execution.id, task_name=name, type="task_execution.updated"
        ).order_by("id")
    ]


def test_a_batch_decides_each_report_and_queues_downstream_once(tenant):
    execution, b, c = b_and_c_running(tenant)
    principal = principal_for_key(tenant.service_api_key)
    entries = [Entry((principal, completed_report(b))), Entry((principal, completed_report(c)))]

    decide(entries)

    assert [entry.error for entry in entries] == [None, None]
    assert [(e.result.task.task_name, e.result.task.status, e.result.created) for e in entries] == [
        ("b", TE.COMPLETED, False),
        ("c", TE.COMPLETED, False),
    ]
    assert [entry.result.claimed for entry in entries] == [None, None]
    assert latest(execution, "b").status == latest(execution, "c").status == TE.COMPLETED
    assert TaskExecution.objects.filter(flow_execution=execution, task_name="d").count() == 1
    assert latest(execution, "d").status == TE.QUEUED
    assert updates_of(execution, "b") == ["running", "completed"]
    assert updates_of(execution, "c") == ["running", "completed"]


def test_a_refused_report_changes_nothing_and_the_others_still_commit(tenant):
    execution, b, c = b_and_c_running(tenant)
    principal = principal_for_key(tenant.service_api_key)
    entries = [
        Entry((principal, completed_report(b))),
        Entry((principal, completed_report(c, worker_id="intruder"))),  # not the lease holder
        Entry((principal, {**completed_report(c), "task_name": "nope"})),  # no such task
    ]

    decide(entries)

    assert entries[0].error is None and entries[0].result.task.status == TE.COMPLETED
    assert isinstance(entries[1].error, Conflict)
    assert isinstance(entries[2].error, BadRequest)
    assert latest(execution, "b").status == TE.COMPLETED
    refused = latest(execution, "c")
    assert (refused.status, refused.lease_owner, refused.output) == (TE.RUNNING, "worker-1", None)
    assert not TaskExecution.objects.filter(flow_execution=execution, task_name="d").exists()
    assert updates_of(execution, "b") == ["running", "completed"]  # once, despite the retry
    assert updates_of(execution, "c") == ["running"]


@pytest.mark.postgres
def test_concurrent_reports_of_one_flow_execution_all_land(tenant):
    """Through the API, from threads at once: reports of one flow execution queue behind the
    batch being decided and are decided together; every one is answered after its commit."""
    shape = {"root": [], **{name: ["root"] for name in MIDDLE}, "end": MIDDLE}
    execution = start(tenant.organization, shape_definition(shape))
    worker = Worker(tenant.client("service"))
    (root,) = worker.claim()
    assert worker.report(root).status_code == 200
    middle = worker.claim()
    assert len(middle) == 12
    assert report_all_at_once(tenant, middle) == {200: 12}
    done = TaskExecution.objects.filter(flow_execution=execution, status=TE.COMPLETED)
    assert done.count() == 13
    assert TaskExecution.objects.filter(flow_execution=execution, task_name="end").count() == 1
    assert reports._reports._waiting == {}


def test_a_new_key_is_inserted_unguarded_and_a_collision_is_decided_again_guarded(
    tenant, monkeypatch
):
    """A report above its task's latest index is inserted with the batch's writes, without
    a savepoint. Should the key exist after all (here: the read of the latest execution is
    made to miss it), the batch is decided again with guarded inserts: each report gets
    the answer it would have got, nothing is duplicated, nothing is refused in error."""
    execution, b, c = b_and_c_running(tenant)
    principal = principal_for_key(tenant.service_api_key)
    real_latest = reports._latest
    attempts = []

    def missing_b(run, data):  # noqa: ANN001
        attempts.append(data["task_name"])
        found = real_latest(run, data)
        return None if data["task_name"] == "b" else found

    monkeypatch.setattr(reports, "_latest", missing_b)
    entries = [
        Entry((principal, completed_report(b))),
        Entry((principal, completed_report(c))),
        Entry((principal, {**completed_report(c), "task_execution_idx": 7})),
    ]
    decide(entries)

    assert [entry.error for entry in entries] == [None, None, None]
    assert [entry.result.created for entry in entries] == [False, False, True]
    assert attempts.count("b") == 2  # decided once unguarded, once guarded
    assert TaskExecution.objects.filter(flow_execution=execution, task_name="b").count() == 1
    assert latest(execution, "b").status == TE.COMPLETED
    assert list(
        TaskExecution.objects.filter(flow_execution=execution, task_name="c")
        .order_by("task_execution_idx")
        .values_list("task_execution_idx", "status")
    ) == [(0, TE.COMPLETED), (7, TE.COMPLETED)]


def test_reports_of_several_flow_executions_are_decided_in_one_batch(tenant, outsider):
    """Reports of one organization are batched whatever their flow execution: their flow
    executions are locked in one statement; a report on a flow execution that is missing
    or another organization's is answered 404 and the others still commit."""
    first, b1, c1 = b_and_c_running(tenant)
    second, b2, c2 = b_and_c_running(tenant)
    foreign = start(outsider.organization, shape_definition(DIAMOND))
    principal = principal_for_key(tenant.service_api_key)
    entries = [
        Entry((principal, completed_report(b1))),
        Entry((principal, completed_report(b2))),
        Entry((principal, completed_report(c1))),
        Entry((principal, {**completed_report(c2), "flow_execution_id": foreign.id})),
        Entry((principal, {**completed_report(c2), "flow_execution_id": uuid.uuid4()})),
        Entry((principal, completed_report(c2))),
    ]

    with CaptureQueriesContext(connection) as queries:
        decide(entries)

    assert [type(entry.error).__name__ for entry in entries] == [
        "NoneType", "NoneType", "NoneType", "NotFound", "NotFound", "NoneType",
    ]  # fmt: skip
    for execution in (first, second):
        assert latest(execution, "b").status == TE.COMPLETED
        assert latest(execution, "c").status == TE.COMPLETED
        assert latest(execution, "d").status == TE.QUEUED
    assert latest(foreign, "a").status == TE.QUEUED
    flow_execution_reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "executions_flowexecution"' in q["sql"]
    ]
    assert len(flow_execution_reads) == 1, flow_execution_reads
    if connection.vendor == "postgresql":  # what reacting reads: one query for all of them
        sql = [q["sql"] for q in queries.captured_queries]
        latest_reads = [q for q in sql if "unnest(" in q and '"executions_taskexecution"' in q]
        output_reads = [
            q for q in sql if q.startswith("SELECT") and 'FROM "outputs_taskoutput"' in q
        ]
        assert len(latest_reads) == 1, latest_reads
        assert len(output_reads) == 1, output_reads


@pytest.mark.postgres
def test_concurrent_reports_of_several_flow_executions_all_land(tenant):
    """Through the API, from threads at once, reports of four flow executions: batched
    together, locked in id order; every report lands and each flow execution goes on."""
    runs = [b_and_c_running(tenant) for _ in range(4)]
    tasks = [task for _, b, c in runs for task in (b, c)]
    assert report_all_at_once(tenant, tasks) == {200: len(tasks)}
    for execution, _, _ in runs:
        assert latest(execution, "d").status == TE.QUEUED
    assert reports._reports._waiting == {}
