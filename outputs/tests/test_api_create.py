"""POST /api/task-outputs (seed 001)."""

from __future__ import annotations

import uuid

import pytest

from outputs.models import TaskOutput
from outputs.tests.factories import make_flow_execution
from realtime.models import Event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.production_path]

URL = "/api/task-outputs"


def body(execution, **overrides):  # noqa: ANN001, ANN003, ANN201
    data = {
        "flow_execution_id": str(execution.id),
        "organization_id": str(execution.organization_id),
        "task_name": "a",
        "summary": {"pages": 10, "word_count": 5000},
        "output": {"text": "hello"},
        "tags": ["doc"],
        "status": "completed",
    }
    data.update(overrides)
    return data


def assert_envelope(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.content
    payload = response.json()
    assert set(payload) == {"error", "request_id"}
    assert payload["error"]["code"] == code
    assert payload["request_id"] == response["X-Request-ID"]
    return payload


def test_create_returns_201_with_the_output(service_client, flow_execution):
    response = service_client.post(URL, body(flow_execution), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    row = TaskOutput.objects.get()
    assert data["id"] == str(row.id)
    assert data["organization_id"] == str(flow_execution.organization_id)
    assert data["flow_execution_id"] == str(flow_execution.id)
    assert data["flow_version"] == flow_execution.flow_version
    assert data["task_name"] == "a"
    assert data["summary"] == {"pages": 10, "word_count": 5000}
    assert data["output"] == {"text": "hello"}
    assert data["tags"] == ["doc"]
    assert data["status"] == "completed"
    assert data["modified_by"] == "system"
    assert data["edited_status"] == "not_edited"
    assert data["stale_status"] == "consistent"
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")


def test_defaults_on_create(service_client, flow_execution):
    minimal = {"flow_execution_id": str(flow_execution.id), "task_name": "a", "summary": None}
    response = service_client.post(URL, minimal, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "queued"
    assert data["summary"] is None and data["output"] is None and data["tags"] is None
    assert data["organization_id"] == str(flow_execution.organization_id)  # inherited


@pytest.mark.parametrize("summary", [None, "text", 3, [1, 2], {"a": {"b": None}}, True])
def test_summary_accepts_any_json(service_client, flow_execution, summary):
    response = service_client.post(URL, body(flow_execution, summary=summary), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["summary"] == summary


def test_second_post_updates_and_returns_200(service_client, flow_execution):
    first = service_client.post(URL, body(flow_execution), format="json").json()
    response = service_client.post(
        URL, body(flow_execution, summary={"pages": 11}, status="failed"), format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert TaskOutput.objects.count() == 1
    assert data["id"] == first["id"] and data["created_at"] == first["created_at"]
    assert data["summary"] == {"pages": 11} and data["status"] == "failed"
    assert data["updated_at"] > first["updated_at"]


def test_retried_identical_report_neither_duplicates_nor_notifies(
    service_client, flow_execution, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = service_client.post(URL, body(flow_execution), format="json")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = service_client.post(URL, body(flow_execution), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert TaskOutput.objects.count() == 1
    assert list(Event.objects.values_list("type", flat=True)) == ["task_output.created"]
    assert callbacks == []


def test_update_changes_only_the_fields_sent(service_client, flow_execution):
    service_client.post(URL, body(flow_execution), format="json")
    response = service_client.post(
        URL,
        {"flow_execution_id": str(flow_execution.id), "task_name": "a", "summary": {"x": 1}},
        format="json",
    )
    assert response.status_code == 200
    data = response.json()
    assert data["summary"] == {"x": 1}
    assert data["output"] == {"text": "hello"}  # kept
    assert data["tags"] == ["doc"]  # kept
    assert data["status"] == "completed"  # not reset to the create default


def test_outputs_of_different_tasks_are_separate(service_client, flow_execution):
    assert service_client.post(URL, body(flow_execution), format="json").status_code == 201
    other = body(flow_execution, task_name="b")
    assert service_client.post(URL, other, format="json").status_code == 201
    assert TaskOutput.objects.count() == 2


def test_mass_assignment_is_ignored(service_client, flow_execution):
    forged_id = str(uuid.uuid4())
    response = service_client.post(
        URL,
        body(
            flow_execution,
            id=forged_id,
            created_at="2000-01-01T00:00:00Z",
            updated_at="2000-01-01T00:00:00Z",
            flow_version=99,
            edited_status="edited_reexecuted",
            stale_status="stale",
        ),
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["id"] != forged_id
    assert not data["created_at"].startswith("2000") and not data["updated_at"].startswith("2000")
    assert data["flow_version"] == flow_execution.flow_version
    assert data["edited_status"] == "not_edited" and data["stale_status"] == "consistent"
    assert not TaskOutput.objects.filter(pk=forged_id).exists()


def test_service_key_records_system_or_the_named_actor(service_client, flow_execution):
    data = service_client.post(URL, body(flow_execution), format="json").json()
    assert data["modified_by"] == "system"
    named = body(flow_execution, modified_by="integration")
    assert service_client.post(URL, named, format="json").json()["modified_by"] == "integration"


def test_user_key_records_the_user_and_cannot_name_another_actor(
    user_client, tenant, flow_execution
):
    response = user_client.post(URL, body(flow_execution, modified_by="system"), format="json")
    assert response.status_code == 201
    assert response.json()["modified_by"] == str(tenant.user.pk)


def test_flow_version_comes_from_the_flow_execution(service_client, tenant):
    execution = make_flow_execution(tenant.organization, version=3)
    response = service_client.post(URL, body(execution), format="json")
    assert response.status_code == 201
    assert response.json()["flow_version"] == 3


# --- errors ---------------------------------------------------------------------------------


def test_unknown_flow_execution_is_404(service_client, flow_execution):
    response = service_client.post(
        URL, body(flow_execution, flow_execution_id=str(uuid.uuid4())), format="json"
    )
    assert_envelope(response, 404, "not_found")
    assert not TaskOutput.objects.exists()


def test_deleted_flow_execution_is_404(service_client, tenant):
    execution = make_flow_execution(tenant.organization, status="deleted")
    assert_envelope(service_client.post(URL, body(execution), format="json"), 404, "not_found")


def test_another_organizations_flow_execution_is_404_like_a_missing_one(
    service_client, tenant, outsider_execution
):
    forged = body(outsider_execution, organization_id=str(tenant.organization.id))
    foreign = assert_envelope(service_client.post(URL, forged, format="json"), 404, "not_found")
    missing = service_client.post(
        URL,
        body(
            outsider_execution,
            organization_id=str(tenant.organization.id),
            flow_execution_id=str(uuid.uuid4()),
        ),
        format="json",
    ).json()
    missing_id = missing["error"]["message"].split()[2]
    foreign_id = foreign["error"]["message"].split()[2]
    assert foreign["error"] == {
        **missing["error"],
        "message": missing["error"]["message"].replace(missing_id, foreign_id),
    }
    assert not TaskOutput.objects.exists()


def test_foreign_organization_id_in_body_is_403(service_client, flow_execution, outsider):
    response = service_client.post(
        URL, body(flow_execution, organization_id=str(outsider.organization.id)), format="json"
    )
    assert_envelope(response, 403, "forbidden")
    assert not TaskOutput.objects.exists()


def test_unknown_task_name_for_the_flow_is_400(service_client, flow_execution):
    response = service_client.post(URL, body(flow_execution, task_name="zzz"), format="json")
    payload = assert_envelope(response, 400, "bad_request")
    assert payload["error"]["details"][0]["loc"] == ["body", "task_name"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"summary": "__missing__"}, ["body", "summary"]),
        ({"task_name": "__missing__"}, ["body", "task_name"]),
        ({"flow_execution_id": "__missing__"}, ["body", "flow_execution_id"]),
        ({"task_name": ""}, ["body", "task_name"]),
        ({"task_name": "x" * 201}, ["body", "task_name"]),
        ({"task_name": 5}, ["body", "task_name"]),
        ({"task_name": None}, ["body", "task_name"]),
        ({"status": "done"}, ["body", "status"]),
        ({"status": 1}, ["body", "status"]),
        ({"flow_execution_id": "not-a-uuid"}, ["body", "flow_execution_id"]),
        ({"flow_execution_id": 12}, ["body", "flow_execution_id"]),
        ({"organization_id": "nope"}, ["body", "organization_id"]),
        ({"organization_id": None}, ["body", "organization_id"]),
        ({"modified_by": 7}, ["body", "modified_by"]),
        ({"modified_by": "m" * 201}, ["body", "modified_by"]),
        ({"id": 123}, ["body", "id"]),
        ({"created_at": False}, ["body", "created_at"]),
    ],
)
def test_schema_violations_are_422(service_client, flow_execution, change, loc):
    data = body(flow_execution)
    for key, value in change.items():
        if value == "__missing__":
            del data[key]
        else:
            data[key] = value
    payload = assert_envelope(
        service_client.post(URL, data, format="json"), 422, "validation_error"
    )
    assert loc in [d["loc"] for d in payload["error"]["details"]]
    assert not TaskOutput.objects.exists()


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"{not json", b"null"])
def test_non_object_or_malformed_body_is_422(service_client, raw):
    response = service_client.post(URL, raw, content_type="application/json")
    assert_envelope(response, 422, "validation_error")


def test_missing_credentials_is_401(anon_client, flow_execution):
    assert_envelope(anon_client.post(URL, body(flow_execution), format="json"), 401, "unauthorized")


def test_read_only_key_cannot_create(tenant, flow_execution):
    from rest_framework.test import APIClient

    from flowplatform.services import create_api_key

    _, raw = create_api_key(organization=tenant.organization, kind="service", read_only=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_envelope(client.post(URL, body(flow_execution), format="json"), 403, "forbidden")


def test_unexpected_error_is_500_envelope(service_client, flow_execution, monkeypatch):
    from executions.engine import outputs

    def explode(**kwargs):  # noqa: ANN003, ANN202
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(outputs, "report_task_output", explode)
    service_client.raise_request_exception = False
    response = service_client.post(URL, body(flow_execution), format="json")
    assert_envelope(response, 500, "internal_error")
    assert b"secret internal detail" not in response.content


# --- notifications --------------------------------------------------------------------------


@pytest.mark.django_db  # inside the test's transaction, to hold the commit back
def test_create_and_update_publish_after_commit(
    tenant, flow_execution, django_capture_on_commit_callbacks, monkeypatch
):
    """In this thread's transaction (the in-process client), to watch the commit."""
    import realtime.publisher

    service_client = tenant.client("service")
    pushed: list = []
    monkeypatch.setattr(realtime.publisher, "push", lambda messages: pushed.append(messages))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = service_client.post(URL, body(flow_execution), format="json").json()
    assert pushed == []  # nothing leaves before commit
    for callback in callbacks:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        updated = service_client.post(
            URL, body(flow_execution, summary={"pages": 12}), format="json"
        ).json()

    events = list(Event.objects.order_by("id"))
    assert [e.type for e in events] == ["task_output.created", "task_output.updated"]
    for event, data in zip(events, [created, updated], strict=True):
        assert event.organization_id == flow_execution.organization_id
        assert event.flow_id == flow_execution.flow_id
        assert event.flow_execution_id == flow_execution.id
        assert event.task_name == "a"
        assert event.data == data
    assert [[m["event_type"] for m in batch] for batch in pushed] == [
        ["task_output.created"],
        ["task_output.updated"],
    ]


def test_failed_request_publishes_nothing(service_client, flow_execution):
    service_client.post(URL, body(flow_execution, task_name=""), format="json")
    service_client.post(URL, body(flow_execution, task_name="zzz"), format="json")
    assert not Event.objects.exists()
