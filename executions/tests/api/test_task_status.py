"""POST /api/flow-executions/{id}/task-status (seed 004)."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest

from executions.models import TaskStatus
from executions.tests.engine.factories import DIAMOND, Worker, shape_definition, start
from outputs.models import TaskOutput

pytestmark = pytest.mark.django_db


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


def test_one_publish_call_for_the_whole_batch(service_client, execution):
    from executions.engine import events as engine_events

    items = [{"task_name": "a", "status": f"s{i}"} for i in range(10)]
    with mock.patch.object(engine_events, "publish", wraps=engine_events.publish) as spy:
        assert post(service_client, execution.id, items).status_code == 200
    assert spy.call_count == 1
    (events,) = spy.call_args.args
    assert [e.type for e in events] == ["task_status.added"] * 10
    assert [e.data["status"] for e in events] == [f"s{i}" for i in range(10)]


def test_statuses_update_existing_outputs(service_client, execution):
    (a,) = Worker(service_client).claim()
    # The claim made the output running; the statuses take it further.
    assert TaskOutput.objects.get(flow_execution=execution, task_name="a").status == "running"
    items = [{"task_name": "a", "status": "queued"}, {"task_name": "a", "status": "in_progress"}]
    post(service_client, execution.id, items)
    assert TaskOutput.objects.get(flow_execution=execution, task_name="a").status == "in_progress"
