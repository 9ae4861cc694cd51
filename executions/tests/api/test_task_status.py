"""POST /api/flow-executions/{id}/task-status (seed 004)."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions.api.task_execution_schemas import STATUS_BATCH
from executions.models import TaskStatus
from executions.representations import task_status_data
from executions.tests.engine.factories import DIAMOND, Worker, shape_definition, start
from flowplatform.exceptions import ValidationFailed
from outputs.models import TaskOutput
from outputs.representations import task_output_data
from realtime.models import Event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.production_path]


@pytest.fixture
def execution(tenant):
    return start(tenant.organization, shape_definition(DIAMOND))


def url(execution_id):
    return f"/api/flow-executions/{execution_id}/task-status"


def post(client, execution_id, statuses):
    return client.post(url(execution_id), {"statuses": statuses}, format="json")


def test_batch_is_recorded_in_order(service_client, execution, tenant):
    items = [
        {"task_name": "a", "status": "running"},
        {"task_name": "b", "status": "anything goes"},
        {"task_name": "a", "status": None},
        {"task_name": "c", "status": "x" * 50},
    ]
    response = post(service_client, execution.id, items)
    assert response.status_code == 200, response.content
    data = response.json()
    assert [(r["task_name"], r["status"]) for r in data] == [
        (i["task_name"], i["status"]) for i in items
    ]
    assert {r["organization_id"] for r in data} == {str(tenant.organization.id)}
    assert {r["flow_execution_id"] for r in data} == {str(execution.id)}
    stored = list(TaskStatus.objects.filter(flow_execution=execution).order_by("seq"))
    assert [str(r.id) for r in stored] == [r["id"] for r in data]


def test_hundred_statuses_make_hundred_rows_in_order(service_client, execution):
    items = [{"task_name": "abcd"[i % 4], "status": f"s{i}"} for i in range(100)]
    assert post(service_client, execution.id, items).status_code == 200
    rows = TaskStatus.objects.filter(flow_execution=execution).order_by("seq")
    assert [r.status for r in rows] == [f"s{i}" for i in range(100)]
    more = post(service_client, execution.id, [{"task_name": "a", "status": "last"}])
    assert more.status_code == 200
    assert TaskStatus.objects.filter(flow_execution=execution).order_by("-seq")[0].status == "last"


@pytest.mark.parametrize("count", [0, 101])
def test_outside_one_to_hundred_is_422_and_writes_nothing(service_client, execution, count):
    items = [{"task_name": "a", "status": "s"}] * count
    response = post(service_client, execution.id, items)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert not TaskStatus.objects.exists()


@pytest.mark.parametrize(
    "item",
    [
        {"task_name": "", "status": "s"},
        {"task_name": "a" * 256, "status": "s"},
        {"task_name": "a", "status": "x" * 51},
        {"status": "s"},
        "a",
    ],
)
def test_invalid_items_are_422(service_client, execution, item):
    response = post(service_client, execution.id, [{"task_name": "a", "status": "ok"}, item])
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"][:3] == ["body", "statuses", 1]
    assert not TaskStatus.objects.exists()


def test_missing_statuses_is_422(service_client, execution):
    assert service_client.post(url(execution.id), {}, format="json").status_code == 422


def test_unknown_task_name_is_400_and_writes_nothing(service_client, execution):
    response = post(
        service_client, execution.id, [{"task_name": "a", "status": "s"}, {"task_name": "zz"}]
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["loc"] == ["body", "statuses", 1, "task_name"]
    assert not TaskStatus.objects.exists()


def test_user_key_is_403_and_writes_nothing(user_client, execution):
    response = post(user_client, execution.id, [{"task_name": "a", "status": "s"}])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not TaskStatus.objects.exists()


def test_no_key_is_401(anon_client, execution):
    assert post(anon_client, execution.id, [{"task_name": "a", "status": "s"}]).status_code == 401


def test_unknown_and_foreign_flow_execution_are_404(service_client, outsider, execution):
    items = [{"task_name": "a", "status": "s"}]
    assert post(service_client, uuid.uuid4(), items).status_code == 404
    assert post(outsider.client("service"), execution.id, items).status_code == 404
    assert not TaskStatus.objects.exists()


def test_unexpected_error_is_500(service_client, execution, monkeypatch):
    from executions.services import task_statuses

    monkeypatch.setattr(task_statuses, "add_task_statuses", mock.Mock(side_effect=KeyError))
    response = post(service_client, execution.id, [{"task_name": "a", "status": "s"}])
    assert response.status_code == 500


def test_one_outbox_insert_for_the_batch_and_its_outputs(tenant, execution):
    service_client = tenant.client("service")  # in this thread, to count its statements
    (a,) = Worker(service_client).claim()  # a's output is running
    items = [{"task_name": "a", "status": f"s{i}"} for i in range(9)]
    items.append({"task_name": "a", "status": "in_progress"})
    first = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    table = Event._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        assert post(service_client, execution.id, items).status_code == 200
    inserts = [q["sql"] for q in queries if f'INSERT INTO "{table}"' in q["sql"]]
    assert len(inserts) == 1
    events = list(Event.objects.filter(id__gt=first).order_by("id"))
    assert [e.type for e in events] == ["task_status.added"] * 10 + ["task_output.updated"]
    assert [e.data["status"] for e in events] == [i["status"] for i in items] + ["in_progress"]


def test_statuses_update_existing_outputs(service_client, execution):
    (a,) = Worker(service_client).claim()
    # The claim made the output running; the statuses take it further.
    assert TaskOutput.objects.get(flow_execution=execution, task_name="a").status == "running"
    items = [{"task_name": "a", "status": "queued"}, {"task_name": "a", "status": "in_progress"}]
    post(service_client, execution.id, items)
    assert TaskOutput.objects.get(flow_execution=execution, task_name="a").status == "in_progress"


TRICKY = [
    {"task_name": "a", "status": None},
    {"task_name": "b", "status": "x" * 50},
    {"task_name": "c", "status": 'é✓ \U0001f600 "quoted" \\ back\nslash'},
    {"task_name": "a", "status": ""},
    {"task_name": "b"},
    {"task_name": "a", "status": "completed"},
    {"task_name": "b", "status": "failed"},
]


def test_response_and_events_match_the_python_renderers(service_client, execution):
    for name in "ab":
        TaskOutput.objects.filter(flow_execution=execution, task_name=name).delete()
        TaskOutput.objects.create(
            organization_id=execution.organization_id,
            flow_execution=execution,
            task_name=name,
            summary={"ü": 1},
        )
    first = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = post(service_client, execution.id, TRICKY)
    assert response.status_code == 200, response.content
    stored = list(TaskStatus.objects.filter(flow_execution=execution).order_by("seq"))
    expected = [task_status_data(row) for row in stored]
    assert response.json() == expected
    assert [r["status"] for r in expected] == [i.get("status") for i in TRICKY]
    events = list(Event.objects.filter(id__gt=first).order_by("id"))
    assert [e.data for e in events[: len(TRICKY)]] == expected
    assert all(e.type == "task_status.added" for e in events[: len(TRICKY)])
    assert [e.task_name for e in events] == [i["task_name"] for i in TRICKY] + ["a", "b"]
    outputs = TaskOutput.objects.filter(flow_execution=execution, task_name__in=["a", "b"])
    by_name = {row.task_name: task_output_data(row) for row in outputs}
    assert [e.type for e in events[len(TRICKY) :]] == ["task_output.updated"] * 2
    assert [e.data for e in events[len(TRICKY) :]] == [by_name["a"], by_name["b"]]
    assert (by_name["a"]["status"], by_name["b"]["status"]) == ("completed", "failed")
    assert {e.flow_id for e in events} == {execution.flow_id}
    assert {e.flow_execution_id for e in events} == {execution.id}


@pytest.mark.parametrize(
    "body",
    [
        {"statuses": [{"task_name": "a", "status": "s"}, {"task_name": "b"}]},
        {"statuses": [{"task_name": "a", "status": None, "extra": 1}]},
        {"statuses": [{"task_name": "é✓", "status": "x" * 50}], "other": True},
        {"statuses": [{"task_name": "a" * 255, "status": ""}]},
        {"statuses": [{"task_name": "a", "status": "s"}] * 100},
        {"statuses": [{"task_name": "a", "status": "s"}] * 101},
        {"statuses": []},
        {"statuses": {"task_name": "a"}},
        {"statuses": "a"},
        {},
        {"statuses": [{"task_name": "", "status": "s"}]},
        {"statuses": [{"task_name": "a" * 256}]},
        {"statuses": [{"task_name": "a", "status": "x" * 51}]},
        {"statuses": [{"task_name": 12, "status": "s"}]},
        {"statuses": [{"task_name": "a", "status": 1.5}]},
        {"statuses": [{"task_name": "a", "status": True}]},
        {"statuses": [{"task_name": None}]},
        {"statuses": [{"status": "s"}]},
        {"statuses": ["a"]},
        {"statuses": [None]},
    ],
)
def test_the_documented_schema_agrees_with_the_validator(body):
    """The body's field table gives both its validator and the serializer that documents
    it: the two accept and refuse the same bodies. (Characters the database cannot store
    are the parser's, before either: ``flowplatform.parsers``.)"""
    from executions.tests.api.plain_checks import validated_or_none

    try:
        validated = STATUS_BATCH.validate(body)
    except ValidationFailed:
        validated = None
    documented = validated_or_none(STATUS_BATCH.serializer(), body)
    assert (validated is None) == (documented is None), body
    if validated is not None:
        assert validated == {"statuses": [dict(item) for item in documented["statuses"]]}


def test_a_history_that_repeats_the_outputs_takes_no_flow_execution_lock(service_client, execution):
    """A worker's status history mostly repeats its reports: when it would change at most
    one output, the batch does not queue behind the engine for the flow execution's lock."""
    from executions.services import task_statuses

    worker = Worker(service_client)
    for _ in range(2):  # a, then b and c
        for task in worker.claim():
            assert worker.report(task).status_code == 200
    repeat = [{"task_name": name, "status": "completed"} for name in ("a", "b", "c")]
    changes_one = [*repeat, {"task_name": "c", "status": "in_progress"}]
    # After it, c is in progress: this one puts c back and b in progress.
    changes_two = [*repeat, {"task_name": "b", "status": "in_progress"}]
    spy = mock.Mock(wraps=task_statuses.lock_flow_execution)
    with mock.patch.object(task_statuses, "lock_flow_execution", spy):
        assert post(service_client, execution.id, repeat).status_code == 200
        assert post(service_client, execution.id, changes_one).status_code == 200
        assert spy.call_count == 0
        assert post(service_client, execution.id, changes_two).status_code == 200
        assert spy.call_count == 1
    outputs = dict(
        TaskOutput.objects.filter(flow_execution=execution).values_list("task_name", "status")
    )
    assert outputs == {"a": "completed", "b": "in_progress", "c": "completed", "d": "queued"}
