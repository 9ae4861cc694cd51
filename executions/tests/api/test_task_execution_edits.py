"""PUT /api/task-executions?execute_flow=&dry_run= (seed 003): edits, staleness, re-runs."""

from __future__ import annotations

import uuid

import pytest

from executions.engine import lifecycle
from executions.enums import EditedStatus, FlowExecutionStatus, StaleStatus, TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.engine.factories import (
    DIAMOND,
    DIAMOND_AND_CHAIN,
    Worker,
    latest,
    queued_names,
    refresh,
    shape_definition,
    start,
    statuses,
)
from outputs.models import TaskOutput
from realtime.models import Event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.production_path]

TE = TaskExecutionStatus
FE = FlowExecutionStatus
URL = "/api/task-executions"


@pytest.fixture
def finished(tenant, service_client):
    execution = start(tenant.organization, shape_definition(DIAMOND_AND_CHAIN))
    Worker(service_client).run_all()
    assert refresh(execution).status == FE.COMPLETED
    return execution


def put(client, task, query="", **fields):
    return client.put(f"{URL}{query}", {"id": str(task.id), **fields}, format="json")


def stale_names(execution):
    return {
        name
        for name in DIAMOND_AND_CHAIN
        if (t := latest(execution, name)) and t.stale_status == StaleStatus.STALE
    }


def snapshot(execution):
    rows = TaskExecution.objects.filter(flow_execution=execution).order_by("id").values()
    outputs = TaskOutput.objects.filter(flow_execution=execution).order_by("id").values()
    return list(rows), list(outputs), refresh(execution).status, Event.objects.count()


def test_editing_root_marks_its_whole_downstream_stale_and_nothing_else(
    user_client, tenant, finished
):
    a = latest(finished, "a")
    response = put(user_client, a, output={"fixed": True})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["output"] == {"fixed": True}
    assert data["edited_status"] == EditedStatus.EDITED_NOT_REEXECUTED
    assert data["modified_by"] == str(tenant.user.pk)
    assert data["status"] == "completed"  # not sent: left alone
    assert stale_names(finished) == {"b", "c", "d"}
    reason = latest(finished, "d").stale_reason
    assert reason == {
        "task_name": "a",
        "task_execution_id": str(a.id),
        "edited_at": data["updated_at"],
        "modified_by": str(tenant.user.pk),
    }
    assert latest(finished, "d").status == TE.COMPLETED  # status kept, flagged stale
    assert refresh(finished).status == FE.STALE
    stale_outputs = set(
        TaskOutput.objects.filter(flow_execution=finished, stale_status="stale").values_list(
            "task_name", flat=True
        )
    )
    assert stale_outputs == {"b", "c", "d"}
    a_output = TaskOutput.objects.get(flow_execution=finished, task_name="a")
    assert a_output.output == {"fixed": True}
    assert a_output.edited_status == EditedStatus.EDITED_NOT_REEXECUTED
    stale_events = Event.objects.filter(type="task_execution.stale")
    assert set(stale_events.values_list("task_name", flat=True)) == {"b", "c", "d"}
    assert queued_names(finished) == set()  # execute_flow=false: nothing re-runs


def test_editing_middle_marks_only_what_depends_on_it(user_client, finished):
    assert put(user_client, latest(finished, "b"), output="B2").status_code == 200
    assert stale_names(finished) == {"d"}


def test_editing_chain_root_marks_only_the_chain(user_client, finished):
    assert put(user_client, latest(finished, "x"), output="X2").status_code == 200
    assert stale_names(finished) == {"y"}


def test_editing_a_leaf_marks_nothing(user_client, finished):
    assert put(user_client, latest(finished, "d"), output="D2").status_code == 200
    assert stale_names(finished) == set()
    assert refresh(finished).status == FE.COMPLETED


def test_dry_run_changes_nothing_and_answers_what_would_go_stale(user_client, finished):
    a = latest(finished, "a")
    before = snapshot(finished)
    response = put(user_client, a, "?dry_run=true", output="new")
    assert response.status_code == 200
    assert response.json()["would_mark_stale"] == ["b", "c", "d"]
    assert response.json()["output"] == "new"
    assert snapshot(finished) == before
    plain = put(user_client, latest(finished, "b"), "?dry_run=true&execute_flow=true", output=1)
    assert plain.json()["would_mark_stale"] == ["d"]
    assert snapshot(finished) == before


def test_execute_flow_requeues_stale_tasks_in_dependency_order(
    user_client, service_client, finished
):
    a = latest(finished, "a")
    response = put(user_client, a, "?execute_flow=true", output={"fixed": 1})
    assert response.json()["edited_status"] == EditedStatus.EDITED_REEXECUTED
    assert refresh(finished).status == FE.RUNNING
    assert queued_names(finished) == {"b", "c"}
    worker = Worker(service_client)
    claimed = {t["task_name"]: t for t in worker.claim()}
    assert set(claimed) == {"b", "c"}
    assert claimed["b"]["task_execution_idx"] == 1
    assert claimed["b"]["input"]["from_a"] == {"fixed": 1}
    worker.report(claimed["b"], output="B1")
    assert latest(finished, "d").task_execution_idx == 0  # waits for c
    worker.report(claimed["c"], output="C1")
    d = latest(finished, "d")
    assert (d.task_execution_idx, d.status, d.stale_status) == (1, TE.QUEUED, "consistent")
    assert d.input == {"task": "d", "from_b": "B1", "from_c": "C1"}
    worker.run_all()
    assert refresh(finished).status == FE.COMPLETED
    indexes = {name: [i for i, _ in rows] for name, rows in statuses(finished).items()}
    assert indexes == {"a": [0], "b": [0, 1], "c": [0, 1], "d": [0, 1], "x": [0], "y": [0]}
    assert stale_names(finished) == set()


def test_reexecute_only_stale_reruns_exactly_the_stale_tasks(user_client, service_client, finished):
    put(user_client, latest(finished, "b"), output="B2")
    lifecycle.reexecute_flow_execution(execution=finished, actor="u", only_stale=True)
    assert latest(finished, "b").edited_status == EditedStatus.EDITED_REEXECUTED
    Worker(service_client).run_all()
    indexes = {name: [i for i, _ in rows] for name, rows in statuses(finished).items()}
    assert indexes == {"a": [0], "b": [0], "c": [0], "d": [0, 1], "x": [0], "y": [0]}
    assert latest(finished, "d").input["from_b"] == "B2"
    assert refresh(finished).status == FE.COMPLETED


def test_chain_reexecution_goes_step_by_step(tenant, user_client, service_client):
    execution = start(tenant.organization, shape_definition({"p": [], "q": ["p"], "r": ["q"]}))
    worker = Worker(service_client)
    worker.run_all()
    put(user_client, latest(execution, "p"), "?execute_flow=true", output="P2")
    assert queued_names(execution) == {"q"}
    (q,) = worker.claim()
    worker.report(q)
    assert queued_names(execution) == {"r"}


def test_human_review_submission_continues_the_flow(tenant, user_client, service_client):
    definition = shape_definition(
        {"a": [], "review": ["a"], "after": ["review"]},
        review={"task_executor_name": "human_review", "parameters": {"instructions": "ok?"}},
    )
    execution = start(tenant.organization, definition)
    worker = Worker(service_client)
    worker.run_all()
    review = latest(execution, "review")
    assert review.status == TE.AWAITING_INPUT
    response = put(user_client, review, status="completed", output={"approved": True})
    assert response.status_code == 200
    (after,) = worker.claim()
    assert after["input"] == {"task": "after", "from_review": {"approved": True}}
    worker.report(after)
    assert refresh(execution).status == FE.COMPLETED


def test_optimistic_lock(user_client, finished):
    a = latest(finished, "a")
    stale_token = "2001-01-01T00:00:00Z"
    before = snapshot(finished)
    conflict = put(user_client, a, output=1, updated_at=stale_token)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"
    assert snapshot(finished) == before
    current = user_client.get(f"{URL}/{a.id}").json()["updated_at"]
    ok = put(user_client, a, output=2, updated_at=current)
    assert ok.status_code == 200
    again = put(user_client, a, output=3, updated_at=current)  # the token moved on
    assert again.status_code == 409
    assert put(user_client, a, output=4).status_code == 200  # no token: last write wins
    assert latest(finished, "a").output == 4


def test_full_record_round_trip_is_accepted(user_client, finished):
    record = user_client.get(f"{URL}/{latest(finished, 'a').id}").json()
    record["output"] = "edited"
    response = user_client.put(URL, record, format="json")
    assert response.status_code == 200
    assert response.json()["output"] == "edited"


def test_service_key_edit_records_named_actor(service_client, finished):
    response = put(service_client, latest(finished, "a"), output=1, modified_by="reviewer-7")
    assert response.json()["modified_by"] == "reviewer-7"


@pytest.mark.parametrize("status", ["queued", "running", "stale", "deleted", "awaiting_input", "x"])
def test_edit_to_a_status_people_cannot_set_is_400(user_client, finished, status):
    response = put(user_client, latest(finished, "a"), status=status)
    assert response.status_code == 400


def test_person_may_fail_or_complete_a_finished_task(user_client, finished):
    a = latest(finished, "a")
    assert put(user_client, a, status="failed", error={"message": "bad"}).status_code == 200
    assert stale_names(finished) == {"b", "c", "d"}
    assert put(user_client, a, status="completed").json()["status"] == "completed"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task_name", "b"),
        ("task_execution_idx", 3),
        ("flow_execution_id", "6c7901ab-83e4-4718-ab54-0f30a29ac868"),
    ],
)
def test_identity_cannot_change(user_client, finished, field, value):
    assert put(user_client, latest(finished, "a"), **{field: value}).status_code == 400


def test_edit_errors(user_client, outsider, finished):
    a = latest(finished, "a")
    assert user_client.put(URL, {"id": str(uuid.uuid4())}, format="json").status_code == 404
    foreign = outsider.client("user").put(URL, {"id": str(a.id), "output": 1}, format="json")
    assert foreign.status_code == 404
    assert user_client.put(URL, {"output": 1}, format="json").status_code == 422
    assert user_client.put(URL, [], format="json").status_code == 422
    assert put(user_client, a, "?execute_flow=maybe", output=1).status_code == 422
    assert put(user_client, a, "?unknown=1", output=1).status_code == 422
    wrong_org = put(user_client, a, output=1, organization_id=str(outsider.organization.id))
    assert wrong_org.status_code == 403
    assert put(user_client, a, updated_at="yesterday").status_code == 422
    assert latest(finished, "a").edited_status == EditedStatus.NOT_EDITED


def test_editing_an_older_attempt_does_not_propagate(tenant, user_client, service_client):
    retries = {"max_attempts": 2, "backoff_seconds": 0}
    execution = start(tenant.organization, shape_definition(DIAMOND, a={"retries": retries}))
    worker = Worker(service_client)
    (a0,) = worker.claim()
    worker.report(a0, "failed", error={"message": "x", "type": "E", "traceback": ""})
    worker.run_all()
    first = TaskExecution.objects.get(flow_execution=execution, task_name="a", task_execution_idx=0)
    assert put(user_client, first, output="late fix").status_code == 200
    assert stale_names(execution) == set()
    assert refresh(execution).status == FE.COMPLETED
