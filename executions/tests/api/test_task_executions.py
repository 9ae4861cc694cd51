"""POST/GET /api/task-executions (seed 002) and GET /api/task-executions/{id}.

The contract of seed 002, run the way production runs it: through the ASGI application,
each request in transactions of its own (``ASGIClient``; reports decided on the batch
threads)."""

from __future__ import annotations

import uuid

import pytest

from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.engine.factories import (
    DIAMOND,
    Worker,
    latest,
    refresh,
    shape_definition,
    start,
)
from flowplatform.services import create_api_key
from flowplatform.tests.rls_harness import request_query_overhead
from realtime.models import Event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.production_path]

TE = TaskExecutionStatus
FE = FlowExecutionStatus
URL = "/api/task-executions"


@pytest.fixture
def execution(tenant):
    return start(tenant.organization, shape_definition(DIAMOND), input={"k": 1})


def body(execution, **overrides):
    data = {
        "flow_execution_id": str(execution.id),
        "task_name": "a",
        "task_execution_idx": 0,
        "status": "completed",
        "output": {"v": 1},
    }
    data.update(overrides)
    return data


def error_code(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]["code"]


# -- POST: create and update -----------------------------------------------------------------


def test_create_returns_201_with_full_record(service_client, execution):
    response = service_client.post(URL, body(execution, task_execution_idx=5), format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["task_execution_idx"] == 5 and data["status"] == "completed"
    assert data["organization_id"] == str(execution.organization_id)
    assert data["modified_by"] == "system"
    assert set(data) >= {
        "id", "organization_id", "flow_execution_id", "task_name", "task_execution_idx",
        "status", "input", "output", "error", "created_at", "updated_at", "modified_by",
    }  # fmt: skip
    assert TaskExecution.objects.filter(id=data["id"]).exists()


def test_update_existing_returns_200_and_drives_engine(service_client, execution):
    a = latest(execution, "a")
    response = service_client.post(URL, body(execution), format="json")
    assert response.status_code == 200
    assert response.json()["id"] == str(a.id)
    assert set(
        TaskExecution.objects.filter(flow_execution=execution, status="queued").values_list(
            "task_name", flat=True
        )
    ) == {"b", "c"}


def test_repeat_of_terminal_report_changes_nothing(service_client, execution):
    first = service_client.post(URL, body(execution), format="json").json()
    events = Event.objects.count()
    again = service_client.post(URL, body(execution), format="json")
    assert again.status_code == 200
    assert again.json() == first
    assert Event.objects.count() == events


@pytest.mark.parametrize(
    "change", [{"status": "failed", "output": None}, {"output": {"v": 2}}, {"status": "running"}]
)
def test_report_changing_terminal_execution_is_409(service_client, execution, change):
    stored = service_client.post(URL, body(execution), format="json").json()
    response = service_client.post(URL, body(execution, **change), format="json")
    assert error_code(response, 409) == "conflict"
    assert service_client.get(f"{URL}/{stored['id']}").json() == stored


def test_report_from_worker_without_the_lease_is_409(service_client, execution):
    (task,) = Worker(service_client, "owner").claim()
    response = Worker(service_client, "intruder").report(task)
    assert error_code(response, 409) == "conflict"
    assert latest(execution, "a").status == TE.RUNNING
    assert Worker(service_client, "owner").report(task).status_code == 200


def test_reports_may_skip_states_and_record_running(service_client, execution):
    response = service_client.post(
        URL, body(execution, task_name="x", status="running", worker_id="w"), format="json"
    )
    assert error_code(response, 400) == "bad_request"  # x is not in this flow
    running = service_client.post(
        URL, body(execution, status="running", worker_id="w", output=None), format="json"
    )
    assert running.status_code == 200 and running.json()["started_at"]
    assert latest(execution, "a").lease_owner == "w"


def test_user_key_may_report_and_is_modified_by(user_client, tenant, execution):
    response = user_client.post(URL, body(execution), format="json")
    assert response.status_code == 200
    assert response.json()["modified_by"] == str(tenant.user.pk)


def test_service_key_may_name_the_actor(service_client, execution):
    response = service_client.post(URL, body(execution, modified_by="integration"), format="json")
    assert response.json()["modified_by"] == "integration"


@pytest.mark.parametrize("status", ["done", "", "COMPLETED", "awaiting_input", "stale"])
def test_invalid_status_is_400(service_client, execution, status):
    response = service_client.post(URL, body(execution, status=status), format="json")
    assert error_code(response, 400) == "bad_request"
    assert response.json()["error"]["details"][0]["loc"] == ["body", "status"]


def test_unknown_task_name_is_400(service_client, execution):
    response = service_client.post(URL, body(execution, task_name="nope"), format="json")
    assert error_code(response, 400) == "bad_request"
    assert not TaskExecution.objects.filter(task_name="nope").exists()


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"task_name": ""}, ["body", "task_name"]),
        ({"task_name": "x" * 201}, ["body", "task_name"]),
        ({"task_execution_idx": -1}, ["body", "task_execution_idx"]),
        ({"task_execution_idx": "one"}, ["body", "task_execution_idx"]),
        ({"flow_execution_id": "not-a-uuid"}, ["body", "flow_execution_id"]),
        ({"status": None}, ["body", "status"]),
    ],
)
def test_schema_violations_are_422(service_client, execution, change, loc):
    response = service_client.post(URL, body(execution, **change), format="json")
    assert error_code(response, 422) == "validation_error"
    assert loc in [d["loc"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize(
    "missing", ["flow_execution_id", "task_name", "task_execution_idx", "status"]
)
def test_missing_required_field_is_422(service_client, execution, missing):
    data = body(execution)
    del data[missing]
    assert error_code(service_client.post(URL, data, format="json"), 422) == "validation_error"


def test_unknown_and_foreign_flow_execution_are_404(service_client, outsider, execution):
    unknown = service_client.post(URL, body(execution, flow_execution_id=str(uuid.uuid4())))
    assert error_code(unknown, 404) == "not_found"
    foreign = outsider.client("service").post(URL, body(execution), format="json")
    assert error_code(foreign, 404) == "not_found"
    assert latest(execution, "a").status == TE.QUEUED


def test_foreign_organization_id_is_403(service_client, outsider, execution):
    response = service_client.post(
        URL, body(execution, organization_id=str(outsider.organization.id)), format="json"
    )
    assert error_code(response, 403) == "forbidden"
    ok = service_client.post(
        URL, body(execution, organization_id=str(execution.organization_id)), format="json"
    )
    assert ok.status_code == 200


def test_unauthenticated_is_401_and_read_only_is_403(anon_client, tenant, execution):
    assert error_code(anon_client.post(URL, body(execution), format="json"), 401)
    _, key = create_api_key(organization=tenant.organization, kind="service", read_only=True)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert error_code(anon_client.post(URL, body(execution), format="json"), 403)


def test_unexpected_error_is_500_envelope(service_client, execution, monkeypatch):
    from executions.engine import reports

    def explode(entries):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(reports._reports, "_decide", explode)
    response = service_client.post(URL, body(execution), format="json")
    assert error_code(response, 500) == "internal_error"
    assert "secret" not in response.content.decode()


def test_report_for_deleted_flow_execution_is_404(service_client, execution):
    from executions.engine import lifecycle

    lifecycle.delete_flow_execution(execution=execution, actor="u")
    assert error_code(service_client.post(URL, body(execution), format="json"), 404)


def test_report_events_are_published(service_client, execution):
    service_client.post(URL, body(execution), format="json")
    types = list(Event.objects.order_by("id").values_list("type", flat=True))
    assert "task_execution.updated" in types and types.count("task_execution.created") == 3


def test_last_attempt_failure_fails_flow_over_api(service_client, execution):
    error = {"message": "x", "type": "E", "traceback": ""}
    service_client.post(URL, body(execution, status="failed", output=None, error=error))
    assert refresh(execution).status == FE.FAILED


# -- GET -------------------------------------------------------------------------------------


def test_list_filters_newest_first_and_paginates(service_client, outsider, execution):
    Worker(service_client).run_all()
    everything = service_client.get(URL).json()
    assert [t["task_name"] for t in everything][:1] == ["d"]
    created = [t["created_at"] for t in everything]
    assert created == sorted(created, reverse=True)
    assert len(everything) == 4
    assert outsider.client("user").get(URL).json() == []
    by_name = service_client.get(URL, {"task_name": "b", "flow_execution_id": str(execution.id)})
    assert [t["task_name"] for t in by_name.json()] == ["b"]
    assert service_client.get(URL, {"status": "queued"}).json() == []
    assert len(service_client.get(URL, {"task_execution_idx": 0}).json()) == 4
    page1 = service_client.get(URL, {"limit": 3})
    assert len(page1.json()) == 3 and 'rel="next"' in page1["Link"]
    cursor = page1.json()[-1]["id"]
    assert f"starting_after={cursor}" in page1["Link"]
    page2 = service_client.get(URL, {"limit": 3, "starting_after": cursor})
    assert [t["id"] for t in page1.json() + page2.json()] == [t["id"] for t in everything]
    assert "Link" not in page2


@pytest.mark.parametrize(
    "query",
    [
        {"status": "done"},
        {"limit": 0},
        {"limit": 1001},
        {"task_execution_idx": -1},
        {"flow_execution_id": "x"},
        {"colour": "red"},
    ],
)
def test_list_invalid_query_is_422(service_client, execution, query):
    response = service_client.get(URL, query)
    assert error_code(response, 422) == "validation_error"
    assert response.json()["error"]["details"][0]["loc"][0] == "query"


def test_list_unknown_cursor_is_400(service_client, execution):
    response = service_client.get(URL, {"starting_after": str(uuid.uuid4())})
    assert error_code(response, 400) == "bad_request"
    assert response.json()["error"]["details"][0]["loc"] == ["query", "starting_after"]


def test_list_matches_detail_rendering(service_client, execution):
    listed = service_client.get(URL, {"task_name": "a"}).json()[0]
    assert service_client.get(f"{URL}/{listed['id']}").json() == listed


def test_listed_items_are_the_detail_byte_for_byte_with_tricky_values(service_client, execution):
    """The list renders items in the database on PostgreSQL: the same JSON text as the
    detail's (key order included) for nulls, unicode, floats, big integers, nested objects
    and whole-second timestamps, deleted rows and other filters excluded."""
    import json
    from datetime import UTC, datetime

    Worker(service_client).run_all()
    tricky = {
        "a": {"text": 'héllo "quoted" \u2603 \\ \n', "float": 1.5, "whole": 2.0, "big": 2**70},
        "b": None,
        "c": [1, "two", {"three": [None, True, False]}],
    }
    for name, value in tricky.items():
        TaskExecution.objects.filter(flow_execution=execution, task_name=name).update(
            output=value, error=None if value else {"type": "E", "message": "ünïcode"}
        )
    TaskExecution.objects.filter(flow_execution=execution, task_name="a").update(
        created_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), started_at=None
    )
    TaskExecution.objects.filter(flow_execution=execution, task_name="d").update(status="deleted")
    response = service_client.get(URL, {"flow_execution_id": str(execution.id)})
    listed = json.loads(response.content)
    assert [t["task_name"] for t in listed][:1] == ["a"]  # newest: its created_at moved ahead
    assert "d" not in {t["task_name"] for t in listed}
    assert listed[0]["created_at"] == "2030-01-02T03:04:05Z"
    assert listed[0]["output"] == tricky["a"]
    for item in listed:
        detail = service_client.get(f"{URL}/{item['id']}")
        assert json.loads(detail.content) == item
        assert list(json.loads(detail.content)) == list(item)  # keys in the same order


def test_detail_404_for_unknown_and_foreign(service_client, outsider, execution):
    task = latest(execution, "a")
    assert service_client.get(f"{URL}/{task.id}").status_code == 200
    assert error_code(outsider.client("user").get(f"{URL}/{task.id}"), 404) == "not_found"
    assert error_code(service_client.get(f"{URL}/{uuid.uuid4()}"), 404) == "not_found"


def test_list_query_count_is_constant(service_client, execution, django_assert_max_num_queries):
    Worker(service_client).run_all()
    # key lookup, (touch), the page (+ the request's transaction and organization under RLS)
    with django_assert_max_num_queries(4 + request_query_overhead()):
        assert len(service_client.get(URL, {"limit": 100}).json()) == 4


# -- the report's hot path: the reported execution read with the latest, unlocked ----------------


def test_a_claimed_report_queueing_the_next_tasks_runs_ten_statements(
    service_client, execution, django_assert_max_num_queries
):
    worker = Worker(service_client)
    (task,) = worker.claim()
    # key lookup; lock; latest executions with the reported one; its UPDATE; outputs SELECT
    # and UPDATE; the two next tasks INSERT, their outputs INSERT; pending tasks UPDATE;
    # the outbox INSERT (+ the test's savepoint and release around the view's transaction,
    # and RLS's statements)
    with django_assert_max_num_queries(12 + request_query_overhead()):
        response = worker.report(task)
    assert response.status_code == 200, response.content
    assert {t["task_name"] for t in worker.claim()} == {"b", "c"}


def test_a_report_read_before_a_claim_took_the_task_is_decided_on_the_claimed_row(
    service_client, tenant, execution, monkeypatch
):
    """The reported execution is read without its row lock; a claim committing between
    that read and the report's update must win: the report is decided again on the locked
    row (here: another worker's lease, 409) instead of overwriting the claim."""
    from executions.engine import reports

    row = latest(execution, "a")
    stale = TaskExecution.objects.get(id=row.id)  # read while queued
    assert Worker(service_client, "worker-1").claim() != []  # the claim commits
    original = reports._latest

    def read_before_the_claim(run, data):
        original(run, data)
        run.latest["a"] = stale
        return stale

    monkeypatch.setattr(reports, "_latest", read_before_the_claim)
    response = service_client.post(
        URL, body(execution, status="completed", worker_id="worker-2"), format="json"
    )
    assert error_code(response, 409) == "conflict"
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.output) == (TE.RUNNING, "worker-1", None)
    assert not Event.objects.filter(task_name="a", data__status="completed").exists()
