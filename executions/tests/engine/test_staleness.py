"""Marking a large downstream closure stale: every row changed is published, in order, as
the API shows it, in the edit's transaction (PostgreSQL renders these events in SQL)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import realtime.publisher
from executions import dsl
from executions.engine import staleness
from executions.engine.events import collecting
from executions.engine.state import Run, lock_flow_execution
from executions.enums import FlowExecutionStatus, StaleStatus
from executions.models import TaskExecution
from executions.representations import task_execution_data
from executions.tests.engine.factories import latest, refresh, shape_definition, start
from outputs.models import TaskOutput
from outputs.representations import task_output_data
from realtime.models import Event
from realtime.publisher import event_message

pytestmark = pytest.mark.django_db

FE = FlowExecutionStatus
RETRIED = "t5"  # fails once, then completes: two executions, only the latest goes stale
DELETED = "t9"  # its output is soft-deleted: it stays deleted and unannounced
SUMMARIZED = "t7"  # a worker set summary and tags on its output


def layered(total: int, width: int) -> dict[str, list[str]]:
    """``root``, then layers of ``width`` tasks, each depending on two of the layer above."""
    shape: dict[str, list[str]] = {"root": []}
    previous = ["root"]
    while len(shape) < total:
        layer = [f"t{len(shape) - 1 + i}" for i in range(min(width, total - len(shape)))]
        for i, name in enumerate(layer):
            shape[name] = sorted({previous[i % len(previous)], previous[(i + 1) % len(previous)]})
        previous = layer
    return shape


@pytest.fixture
def pushed(monkeypatch):  # noqa: ANN001, ANN201
    """Event messages pushed to the channel layer (after commit only), batch by batch."""
    batches: list = []
    monkeypatch.setattr(realtime.publisher, "push", lambda messages: batches.append(messages))
    return batches


def run_to_completion(service_client, *, retried: str | None = None) -> None:  # noqa: ANN001
    """Complete every task through the API, with varied JSON outputs; ``retried`` fails
    once first."""
    for _ in range(100):
        response = service_client.post(
            "/api/task-executions/claim",
            {"worker_id": "w", "executors": ["noop"], "limit": 50},
            format="json",
        )
        tasks = response.json()["task_executions"]
        if not tasks:
            return
        for task in tasks:
            body = {
                "flow_execution_id": task["flow_execution_id"],
                "task_name": task["task_name"],
                "task_execution_idx": task["task_execution_idx"],
                "worker_id": "w",
            }
            if task["task_name"] == retried and task["task_execution_idx"] == 0:
                body.update(status="failed", error={"message": "once", "type": "E"})
            else:
                output = {"n": task["task_name"], "f": 1.5, "u": 'é ✓ "q"', "z": None}
                body.update(status="completed", output={**output, "l": [1, {"b": False}]})
            answer = service_client.post("/api/task-executions", body, format="json")
            assert answer.status_code == 200, answer.content
    raise AssertionError("work did not run out")


def post_output(service_client, execution, task_name: str, **fields) -> None:  # noqa: ANN001, ANN003
    body = {"flow_execution_id": str(execution.id), "task_name": task_name, **fields}
    response = service_client.post("/api/task-outputs", body, format="json")
    assert response.status_code == 200, response.content


def warm_up(client) -> None:  # noqa: ANN001
    """A first request: the key's ``last_used_at`` is written once, not by what follows."""
    assert client.get("/api/task-executions?limit=1").status_code == 200


def edit_root(client, execution, query: str = ""):  # noqa: ANN001, ANN201
    root = latest(execution, "root")
    response = client.put(
        f"/api/task-executions{query}", {"id": str(root.id), "output": {"v": 2}}, format="json"
    )
    assert response.status_code == 200, response.content
    return response


def test_every_stale_row_is_published_as_the_api_shows_it(
    tenant, user_client, service_client, pushed, django_capture_on_commit_callbacks
):
    shape = layered(80, 8)
    definition = shape_definition(shape, **{RETRIED: {"retries": {"max_attempts": 2}}})
    execution = start(tenant.organization, definition)
    run_to_completion(service_client, retried=RETRIED)
    post_output(service_client, execution, SUMMARIZED, summary={"rows": 3}, tags=["x"])
    post_output(service_client, execution, DELETED, summary=None, status="deleted")
    assert refresh(execution).status == FE.COMPLETED
    assert latest(execution, RETRIED).task_execution_idx == 1
    dag = dsl.validate_definition(definition).dag
    closure = dag.in_order(dag.downstream_closure(["root"]))
    assert len(closure) == 79
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    root = latest(execution, "root")

    with django_capture_on_commit_callbacks(execute=True):
        response = edit_root(user_client, execution)

    events = list(Event.objects.filter(id__gt=before).order_by("id"))
    outputs = [name for name in closure if name != DELETED]
    assert [e.type for e in events] == [
        "task_execution.updated",
        "task_output.updated",
        *["task_execution.stale"] * len(closure),
        *["task_output.updated"] * len(outputs),
        "flow_execution.status_changed",
    ]
    stale_events = events[2 : 2 + len(closure)]
    output_events = events[2 + len(closure) : -1]
    assert [e.task_name for e in stale_events] == closure  # dependency order
    assert [e.task_name for e in output_events] == outputs  # dependency order too
    reason = {
        "task_name": "root",
        "task_execution_id": str(root.id),
        "edited_at": response.json()["updated_at"],
        "modified_by": str(tenant.user.pk),
    }
    for event in stale_events:
        row = latest(execution, event.task_name)
        assert (row.stale_status, row.stale_reason) == (StaleStatus.STALE, reason)
        assert event.data == task_execution_data(row)
        api = user_client.get(f"/api/task-executions/{row.id}").json()
        assert event.data == api
        assert (event.flow_id, event.flow_execution_id) == (execution.flow_id, execution.id)
    older = TaskExecution.objects.get(
        flow_execution=execution, task_name=RETRIED, task_execution_idx=0
    )
    assert older.stale_status == StaleStatus.CONSISTENT
    assert stale_events[closure.index(RETRIED)].data["task_execution_idx"] == 1
    for event in output_events:
        row = TaskOutput.objects.get(flow_execution=execution, task_name=event.task_name)
        assert (row.status, row.stale_status) == ("stale", "stale")
        assert event.data == task_output_data(row)
        assert event.data == user_client.get(f"/api/task-outputs/{row.id}").json()
    summarized = next(e for e in output_events if e.task_name == SUMMARIZED)
    assert (summarized.data["summary"], summarized.data["tags"]) == ({"rows": 3}, ["x"])
    deleted = TaskOutput.objects.get(flow_execution=execution, task_name=DELETED)
    assert (deleted.status, deleted.stale_status) == ("deleted", "consistent")
    assert refresh(execution).status == FE.STALE
    # What was pushed after commit is exactly the outbox, in order.
    assert [m for batch in pushed for m in batch] == [event_message(e) for e in events]


@pytest.mark.parametrize("query", ["", "?dry_run=true"])
def test_the_statements_of_an_edit_do_not_grow_with_the_closure(
    tenant, user_client, service_client, query
):
    warm_up(user_client)

    def statements(total: int) -> int:
        execution = start(tenant.organization, shape_definition(layered(total, 4)))
        run_to_completion(service_client)
        with CaptureQueriesContext(connection) as queries:
            edit_root(user_client, execution, query)
        return len(queries)

    assert statements(6) == statements(40)


def test_dry_run_changes_nothing(tenant, user_client, service_client):
    shape = layered(30, 5)
    execution = start(tenant.organization, shape_definition(shape))
    run_to_completion(service_client)
    events = Event.objects.count()
    warm_up(user_client)
    with CaptureQueriesContext(connection) as queries:
        response = edit_root(user_client, execution, "?dry_run=true")
    dag = dsl.validate_definition(shape_definition(shape)).dag
    assert response.json()["would_mark_stale"] == dag.in_order(dag.downstream_closure(["root"]))
    assert Event.objects.count() == events
    assert not TaskExecution.objects.filter(flow_execution=execution, stale_status="stale")
    assert refresh(execution).status == FE.COMPLETED
    writes = ("UPDATE", "INSERT", "DELETE")
    assert not [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(writes)]


@pytest.mark.postgres
def test_mark_stale_rule(tenant, service_client):
    """PostgreSQL's set-based marking (``mark_stale_set_based``) changes exactly the rows the
    rule (``mark_stale``) changes, to the same values, and publishes the same events in the
    same order: on two runs of one flow, with a retried task, a soft-deleted output, an
    output already stale and a task that never ran."""
    shape = {**layered(40, 6), "never": ["t30"]}
    definition = shape_definition(shape, **{RETRIED: {"retries": {"max_attempts": 2}}})
    flow = start(tenant.organization, definition).flow
    runs = [start(tenant.organization, definition, flow=flow) for _ in range(2)]
    refs = [run.id for run in runs]
    run_to_completion(service_client, retried=RETRIED)
    TaskExecution.objects.filter(flow_execution__in=refs, task_name="never").delete()
    for execution in runs:
        post_output(service_client, execution, DELETED, summary=None, status="deleted")
        post_output(service_client, execution, "t3", summary=None, status="stale")
    closure = dsl.validate_definition(definition).dag.in_order(
        dsl.validate_definition(definition).dag.downstream_closure(["root"])
    )
    reason = {"task_name": "root", "task_execution_id": "x", "edited_at": "y", "modified_by": "z"}
    marked, events = [], []
    for execution, mark in zip(
        runs, (staleness.mark_stale, staleness.mark_stale_set_based), strict=True
    ):
        before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        with transaction.atomic(), collecting():
            run = Run.of(
                lock_flow_execution(
                    flow_execution_id=execution.id, organization=tenant.organization
                )
            )
            marked.append(mark(run, closure, reason=reason))
        events.append(
            [
                (e.type, e.task_name, comparable(e.data))
                for e in Event.objects.filter(id__gt=before).order_by("id")
            ]
        )
    assert marked[0] == marked[1]
    assert "never" not in marked[0] and len(marked[0]) == 40 - 1
    assert events[0] == events[1]
    state = [
        {
            t.task_name: (t.task_execution_idx, t.status, t.stale_status, t.stale_reason)
            for t in TaskExecution.objects.filter(flow_execution_id=pk)
        }
        for pk in refs
    ]
    assert state[0] == state[1]
    outputs = [
        {
            o.task_name: (o.status, o.stale_status, o.output, o.summary, o.modified_by)
            for o in TaskOutput.objects.filter(flow_execution_id=pk)
        }
        for pk in refs
    ]
    assert outputs[0] == outputs[1]
    assert outputs[0][DELETED][0] == "deleted"


def comparable(data: dict) -> dict:
    """An event's data without what differs between two runs (ids, times)."""
    return {
        key: value
        for key, value in data.items()
        if key
        not in {"id", "flow_execution_id", "created_at", "updated_at", "started_at", "completed_at"}
    }
