from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from executions.engine.outputs import report_task_output
from executions.models import FlowExecution
from executions.tests.factories import (
    TWO_STEPS,
    make_flow,
    make_flow_execution,
)
from flowplatform.principal import Principal
from flowplatform.services import create_api_key
from realtime.models import Event

pytestmark = pytest.mark.django_db

EXECUTION_FIELDS = {
    "id",
    "organization_id",
    "flow_id",
    "flow_version",
    "status",
    "input",
    "created_at",
    "updated_at",
    "modified_by",
    "started_at",
    "completed_at",
}


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]


@pytest.fixture
def flow(tenant):
    return make_flow(tenant.organization)


# -- create -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "service"])
def test_create_pins_the_current_version(tenant, flow, kind, django_capture_on_commit_callbacks):
    client = tenant.client(kind)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/flow-executions",
            {"flow_id": str(flow.id), "input": {"rows": [1, 2]}},
            format="json",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == EXECUTION_FIELDS
    assert body["flow_id"] == str(flow.id) and body["flow_version"] == 1
    assert body["organization_id"] == str(tenant.organization.id)
    assert body["input"] == {"rows": [1, 2]}
    assert body["modified_by"] == ("system" if kind == "service" else str(tenant.user.pk))
    stored = FlowExecution.objects.get(id=body["id"])
    assert stored.flow_version == 1
    # Started by the engine: running, with its root task queued.
    assert body["status"] == stored.status == "running" and body["started_at"]
    assert list(stored.task_executions.values_list("task_name", "status")) == [("a", "queued")]
    created = Event.objects.filter(type="flow_execution.created", flow_execution_id=stored.id)
    assert created.count() == 1
    assert created.get().data["id"] == body["id"]


@pytest.mark.parametrize("value", [None, 0, "text", [1, {"a": None}]])
def test_input_accepts_any_json(user_client, flow, value):
    response = user_client.post(
        "/api/flow-executions", {"flow_id": str(flow.id), "input": value}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["input"] == value


def test_input_may_be_omitted(user_client, flow):
    response = user_client.post("/api/flow-executions", {"flow_id": str(flow.id)}, format="json")
    assert response.status_code == 201
    assert response.json()["input"] is None


def test_service_key_may_name_the_actor(service_client, user_client, tenant, flow):
    body = {"flow_id": str(flow.id), "modified_by": "integration"}
    assert (
        service_client.post("/api/flow-executions", body, format="json").json()["modified_by"]
        == "integration"
    )
    assert user_client.post("/api/flow-executions", body, format="json").json()[
        "modified_by"
    ] == str(tenant.user.pk)


def test_draft_flow_may_run(user_client, tenant):
    draft = make_flow(tenant.organization, status="draft")
    response = user_client.post("/api/flow-executions", {"flow_id": str(draft.id)}, format="json")
    assert response.status_code == 201


def test_unknown_foreign_or_deleted_flow_is_404(user_client, tenant, outsider):
    deleted = make_flow(tenant.organization)
    user_client.delete(f"/api/flows/{deleted.id}")
    theirs = make_flow(outsider.organization)
    for flow_id in (uuid.uuid4(), theirs.id, deleted.id):
        response = user_client.post(
            "/api/flow-executions", {"flow_id": str(flow_id)}, format="json"
        )
        error(response, 404, "not_found")
    assert not FlowExecution.objects.exists()


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "flow_id"]),
        ({"flow_id": "nope"}, ["body", "flow_id"]),
        ({"flow_id": None}, ["body", "flow_id"]),
    ],
)
def test_schema_violations_are_422(user_client, body, loc):
    err = error(
        user_client.post("/api/flow-executions", body, format="json"), 422, "validation_error"
    )
    assert [d["loc"] for d in err["details"]] == [loc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "completed"),
        ("id", "4f1c9a52-0000-4000-8000-000000000002"),
        ("flow_version", 9),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("started_at", "2020-01-01T00:00:00Z"),
    ],
)
def test_server_fields_are_rejected(user_client, flow, field, value):
    response = user_client.post(
        "/api/flow-executions", {"flow_id": str(flow.id), field: value}, format="json"
    )
    err = error(response, 422, "validation_error")
    assert [(d["loc"], d["type"]) for d in err["details"]] == [(["body", field], "read_only")]
    assert not FlowExecution.objects.exists()


def test_foreign_organization_id_is_403(user_client, flow, outsider, tenant):
    body = {"flow_id": str(flow.id), "organization_id": str(outsider.organization.id)}
    error(user_client.post("/api/flow-executions", body, format="json"), 403, "forbidden")
    assert not FlowExecution.objects.exists()
    body["organization_id"] = str(tenant.organization.id)
    assert user_client.post("/api/flow-executions", body, format="json").status_code == 201


# -- read -------------------------------------------------------------------------------------


def _add_output(execution, task_name: str, summary) -> None:
    principal = Principal(organization=execution.organization, kind="service", actor="system")
    report_task_output(
        principal=principal,
        data={
            "flow_execution_id": execution.id,
            "task_name": task_name,
            "summary": summary,
            "output": {"n": summary},
        },
    )


@pytest.mark.parametrize("kind", ["user", "service"])
def test_retrieve_embeds_task_outputs_in_creation_order(tenant, flow, kind):
    execution = make_flow_execution(flow, input={"x": 1})
    other = make_flow_execution(flow)
    # Starting queued the root task "a", whose output exists from then on.
    _add_output(execution, "d", 1)
    _add_output(execution, "c", 2)
    _add_output(execution, "a", 3)  # updates the existing output in place
    _add_output(other, "b", 4)
    response = tenant.client(kind).get(f"/api/flow-executions/{execution.id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == EXECUTION_FIELDS | {"task_outputs"}
    assert body["input"] == {"x": 1}
    assert [(o["task_name"], o["summary"]) for o in body["task_outputs"]] == [
        ("a", 3),
        ("d", 1),
        ("c", 2),
    ]
    assert all(o["flow_execution_id"] == str(execution.id) for o in body["task_outputs"])


def test_retrieve_unknown_is_404(user_client):
    error(user_client.get(f"/api/flow-executions/{uuid.uuid4()}"), 404, "not_found")


def test_list_newest_first_with_filters(user_client, tenant, outsider, flow):
    other_flow = make_flow(tenant.organization, display_name="other", definition=TWO_STEPS)
    e1 = make_flow_execution(flow)
    e2 = make_flow_execution(other_flow)
    e3 = make_flow_execution(flow)
    make_flow_execution(make_flow(outsider.organization))

    def ids(**params):
        response = user_client.get("/api/flow-executions", params)
        assert response.status_code == 200, response.content
        return [e["id"] for e in response.json()]

    assert ids() == [str(e3.id), str(e2.id), str(e1.id)]
    assert ids(flow_id=str(flow.id)) == [str(e3.id), str(e1.id)]
    assert ids(flow_id=str(uuid.uuid4())) == []
    assert ids(ordering="created_at") == [str(e1.id), str(e2.id), str(e3.id)]
    assert ids(ordering="-created_at") == [str(e3.id), str(e2.id), str(e1.id)]
    assert user_client.post(f"/api/flow-executions/{e2.id}/cancel").status_code == 200
    assert ids(status="cancelled") == [str(e2.id)]
    assert ids(status="running") == [str(e3.id), str(e1.id)]
    assert ids(status="failed") == []
    assert ids(created_after=e1.created_at.isoformat()) == [str(e3.id), str(e2.id)]
    assert ids(created_before=e3.created_at.isoformat()) == [str(e2.id), str(e1.id)]
    assert ids(
        created_after=(e1.created_at - timedelta(seconds=1)).isoformat(),
        created_before=e2.created_at.isoformat(),
    ) == [str(e1.id)]
    e1.refresh_from_db()
    e2.refresh_from_db()
    FlowExecution.objects.filter(id=e2.id).update(updated_at=e1.updated_at + timedelta(hours=1))
    assert ids(ordering="-updated_at")[0] == str(e2.id)
    assert ids(ordering="updated_at")[-1] == str(e2.id)
    assert ids(updated_after=(e1.updated_at + timedelta(minutes=1)).isoformat()) == [str(e2.id)]
    assert str(e2.id) not in ids(updated_before=(e1.updated_at + timedelta(minutes=1)).isoformat())


@pytest.mark.parametrize("ordering", ["-created_at", "created_at", "-updated_at", "updated_at"])
def test_cursor_pages_are_disjoint_ordered_and_complete(user_client, flow, ordering):
    executions = [make_flow_execution(flow) for _ in range(7)]
    expected = [
        str(e.id)
        for e in FlowExecution.objects.filter(id__in=[e.id for e in executions]).order_by(
            ordering, ordering.replace("created_at", "id").replace("updated_at", "id")
        )
    ]
    seen, url, pages = [], f"/api/flow-executions?limit=3&ordering={ordering}", 0
    while url:
        response = user_client.get(url)
        assert response.status_code == 200, response.content
        seen += [e["id"] for e in response.json()]
        pages += 1
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    assert pages == 3
    assert seen == expected


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"flow": "x"}, "flow"),
        ({"flow_id": "x"}, "flow_id"),
        ({"status": "deleted"}, "status"),
        ({"status": "nope"}, "status"),
        ({"ordering": "id"}, "ordering"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"updated_before": "soon"}, "updated_before"),
    ],
)
def test_bad_query_parameters_are_422(user_client, params, name):
    err = error(user_client.get("/api/flow-executions", params), 422, "validation_error")
    assert [d["loc"] for d in err["details"]] == [["query", name]]


def test_unknown_cursor_is_400(user_client):
    params = {"starting_after": "4f1c9a52-0000-4000-8000-000000000003"}
    err = error(user_client.get("/api/flow-executions", params), 400, "bad_request")
    assert [d["loc"] for d in err["details"]] == [["query", "starting_after"]]


def test_default_limit_is_100_with_link(user_client, flow):
    for _ in range(101):
        FlowExecution.objects.create(organization=flow.organization, flow=flow, flow_version=1)
    response = user_client.get("/api/flow-executions")
    assert len(response.json()) == 100
    assert 'rel="next"' in response["Link"]


# -- delete -------------------------------------------------------------------------------------


def test_delete_is_soft_idempotent_and_hides_it(user_client, flow):
    execution = make_flow_execution(flow)
    response = user_client.delete(f"/api/flow-executions/{execution.id}")
    assert response.status_code == 204 and response.content == b""
    assert FlowExecution.objects.get(id=execution.id).status == "deleted"
    # Its queued root task will not be picked up by a worker any more.
    assert execution.task_executions.get(task_name="a").status == "cancelled"
    assert (
        Event.objects.filter(
            type="flow_execution.status_changed",
            flow_execution_id=execution.id,
            data__status="deleted",
        ).count()
        == 1
    )
    assert user_client.delete(f"/api/flow-executions/{execution.id}").status_code == 204
    error(user_client.get(f"/api/flow-executions/{execution.id}"), 404, "not_found")
    assert user_client.get("/api/flow-executions").json() == []
    error(user_client.post(f"/api/flow-executions/{execution.id}/cancel"), 404, "not_found")


def test_executions_of_a_deleted_flow_stay_readable(user_client, flow):
    execution = make_flow_execution(flow)
    user_client.delete(f"/api/flows/{flow.id}")
    assert user_client.get(f"/api/flow-executions/{execution.id}").status_code == 200


# -- execute and cancel ---------------------------------------------------------------------------


def test_cancel_then_execute_again(user_client, flow, django_capture_on_commit_callbacks):
    execution = make_flow_execution(flow)
    assert execution.status == "running"
    # Re-executing a running flow execution is a conflict.
    error(user_client.post(f"/api/flow-executions/{execution.id}/execute"), 409, "conflict")

    response = user_client.post(f"/api/flow-executions/{execution.id}/cancel")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == EXECUTION_FIELDS
    assert (body["id"], body["status"]) == (str(execution.id), "cancelled")
    assert execution.task_executions.get(task_name="a").status == "cancelled"
    # Repeating is harmless.
    assert user_client.post(f"/api/flow-executions/{execution.id}/cancel").json()["status"] == (
        "cancelled"
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(f"/api/flow-executions/{execution.id}/execute?only_failed=true")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "running"
    latest = execution.task_executions.filter(task_name="a").order_by("-task_execution_idx")
    assert [(t.task_execution_idx, t.status) for t in latest] == [(1, "queued"), (0, "cancelled")]


def test_execute_rejects_conflicting_options(user_client, flow):
    execution = make_flow_execution(flow)
    response = user_client.post(
        f"/api/flow-executions/{execution.id}/execute?only_stale=true&only_failed=true"
    )
    error(response, 400, "bad_request")  # well-formed, contradictory: not a schema violation
    response = user_client.post(f"/api/flow-executions/{execution.id}/execute?force=1")
    assert error(response, 422, "validation_error")["details"][0]["loc"] == ["query", "force"]


# -- tenancy and permissions ---------------------------------------------------------------------

EXECUTION_ROUTES = [
    ("get", "/api/flow-executions/{id}"),
    ("delete", "/api/flow-executions/{id}"),
    ("post", "/api/flow-executions/{id}/execute"),
    ("post", "/api/flow-executions/{id}/execute?only_failed=true"),
    ("post", "/api/flow-executions/{id}/cancel"),
]


@pytest.mark.parametrize(("method", "route"), EXECUTION_ROUTES)
def test_another_organizations_execution_is_404_everywhere(user_client, outsider, method, route):
    theirs = make_flow_execution(make_flow(outsider.organization))
    before = FlowExecution.objects.get(id=theirs.id)
    err = error(getattr(user_client, method)(route.format(id=theirs.id)), 404, "not_found")
    missing = uuid.uuid4()
    missing_err = error(getattr(user_client, method)(route.format(id=missing)), 404, "not_found")
    assert err["message"].replace(str(theirs.id), "ID") == missing_err["message"].replace(
        str(missing), "ID"
    )
    after = FlowExecution.objects.get(id=theirs.id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("delete", "/api/flow-executions/{id}"),
        ("post", "/api/flow-executions/{id}/execute"),
        ("post", "/api/flow-executions/{id}/cancel"),
    ],
)
def test_service_keys_cannot_delete_cancel_or_execute(service_client, flow, method, route):
    execution = make_flow_execution(flow)
    before = FlowExecution.objects.get(id=execution.id)
    error(getattr(service_client, method)(route.format(id=execution.id)), 403, "forbidden")
    after = FlowExecution.objects.get(id=execution.id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)


def test_service_keys_can_list_and_read(service_client, flow):
    execution = make_flow_execution(flow)
    assert service_client.get("/api/flow-executions").status_code == 200
    assert service_client.get(f"/api/flow-executions/{execution.id}").status_code == 200


def test_read_only_key_cannot_start(tenant, flow):
    _, raw = create_api_key(organization=tenant.organization, kind="service", read_only=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/flow-executions").status_code == 200
    response = client.post("/api/flow-executions", {"flow_id": str(flow.id)}, format="json")
    error(response, 403, "forbidden")
    assert not FlowExecution.objects.exists()


@pytest.mark.parametrize(
    ("method", "route"),
    [("get", "/api/flow-executions"), ("post", "/api/flow-executions"), *EXECUTION_ROUTES],
)
def test_anonymous_is_401(anon_client, flow, method, route):
    execution = make_flow_execution(flow)
    error(getattr(anon_client, method)(route.format(id=execution.id)), 401, "unauthorized")
