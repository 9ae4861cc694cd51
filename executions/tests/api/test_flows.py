from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from executions.models import Flow, FlowVersion
from executions.tests.factories import (
    DIAMOND,
    TWO_STEPS,
    make_flow,
    make_flow_execution,
)
from flowplatform.services import create_api_key

pytestmark = pytest.mark.django_db

DIAMOND_YAML = """\
tasks:
  - name: a
    task_executor_name: noop
  - name: b
    task_executor_name: noop
    depends_on: [a]
  - name: c
    task_executor_name: noop
    depends_on: [a]
  - name: d
    task_executor_name: noop
    depends_on: [b, c]
"""


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]


def create(client: APIClient, **body) -> dict:
    body.setdefault("display_name", "My flow")
    body.setdefault("definition", DIAMOND)
    response = client.post("/api/flows", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# -- create -----------------------------------------------------------------------------------


def test_create_with_definition_object(user_client, tenant):
    response = user_client.post(
        "/api/flows",
        {
            "display_name": "Nightly import",
            "description": "imports things",
            "status": "published",
            "tags": ["etl", "nightly"],
            "definition": DIAMOND,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "organization_id",
        "display_name",
        "description",
        "status",
        "version",
        "definition",
        "tags",
        "created_at",
        "updated_at",
        "modified_by",
        "deleted",
    }
    assert body["organization_id"] == str(tenant.organization.id)
    assert body["display_name"] == "Nightly import"
    assert body["description"] == "imports things"
    assert (body["status"], body["version"], body["deleted"]) == ("published", 1, False)
    assert body["tags"] == ["etl", "nightly"]
    assert body["modified_by"] == str(tenant.user.pk)
    assert [t["name"] for t in body["definition"]["tasks"]] == ["a", "b", "c", "d"]
    # Canonical form: defaults are spelled out.
    assert body["definition"]["tasks"][0]["retries"] == {
        "max_attempts": 1,
        "backoff_seconds": 0,
        "backoff_factor": 2,
    }
    version = FlowVersion.objects.get(flow_id=body["id"])
    assert version.version == 1 and version.definition == body["definition"]


def test_create_defaults(user_client):
    body = create(user_client)
    assert (body["status"], body["description"], body["tags"]) == ("draft", "", None)


@pytest.mark.parametrize("text", [DIAMOND_YAML, json.dumps(DIAMOND)], ids=["yaml", "json"])
def test_create_with_definition_text(user_client, text):
    body = create(user_client, definition=text)
    assert [t["name"] for t in body["definition"]["tasks"]] == ["a", "b", "c", "d"]
    assert body["definition"]["tasks"][3]["depends_on"] == ["b", "c"]


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml", "application/x-yaml"])
def test_create_with_yaml_body(user_client, content_type):
    document = "display_name: From YAML\nstatus: published\ntags: [a, b]\ndefinition:\n" + "".join(
        f"  {line}\n" for line in DIAMOND_YAML.splitlines()
    )
    response = user_client.post("/api/flows", document, content_type=content_type)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["display_name"], body["status"], body["tags"]) == (
        "From YAML",
        "published",
        ["a", "b"],
    )
    assert len(body["definition"]["tasks"]) == 4


def test_yaml_body_uses_yaml_1_2_scalars(user_client):
    # YAML 1.1 would read `no` as false, which is not a string display name.
    document = "display_name: no\ndefinition: {tasks: [{name: a, task_executor_name: noop}]}\n"
    response = user_client.post("/api/flows", document, content_type="application/yaml")
    assert response.status_code == 201, response.content
    assert response.json()["display_name"] == "no"


@pytest.mark.parametrize(
    "document",
    ["display_name: [unclosed\n", "- a list\n- not a mapping\n", "a: 1\na: 2\n"],
    ids=["syntax", "not-a-mapping", "duplicate-key"],
)
def test_malformed_yaml_body_is_422(user_client, document):
    response = user_client.post("/api/flows", document, content_type="application/yaml")
    err = error(response, 422, "validation_error")
    assert err["details"][0]["loc"] == ["body"]
    assert not Flow.objects.exists()


@pytest.mark.parametrize("tags", ["!!set {a, b}", "!!binary aGVsbG8=", "!!timestamp 2024-01-01"])
def test_yaml_values_that_are_not_json_are_422(user_client, tags):
    definition = "{tasks: [{name: a, task_executor_name: noop}]}"
    document = f"display_name: x\ntags: {tags}\ndefinition: {definition}\n"
    response = user_client.post("/api/flows", document, content_type="application/yaml")
    err = error(response, 422, "validation_error")
    assert [d["loc"] for d in err["details"]] == [["body", "tags"]]
    assert not Flow.objects.exists()


def test_yaml_alias_bomb_is_rejected(user_client):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    # Each level refers to the previous one ten times: 10**9 values once expanded.
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    document = "\n".join(lines) + "\ndisplay_name: x\ntags: *a8\ndefinition: {tasks: []}\n"
    response = user_client.post("/api/flows", document, content_type="application/yaml")
    err = error(response, 422, "validation_error")
    assert "more than" in err["details"][0]["msg"]


def test_unsupported_media_type_is_415(user_client):
    response = user_client.post("/api/flows", "display_name=x", content_type="text/plain")
    error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"definition": DIAMOND}, ["body", "display_name"]),
        ({"display_name": "", "definition": DIAMOND}, ["body", "display_name"]),
        ({"display_name": "x" * 201, "definition": DIAMOND}, ["body", "display_name"]),
        ({"display_name": {"a": 1}, "definition": DIAMOND}, ["body", "display_name"]),
        ({"display_name": "x"}, ["body", "definition"]),
        ({"display_name": "x", "definition": 5}, ["body", "definition"]),
        ({"display_name": "x", "definition": ["tasks"]}, ["body", "definition"]),
        ({"display_name": "x", "definition": DIAMOND, "status": "live"}, ["body", "status"]),
        ({"display_name": "x", "definition": DIAMOND, "description": []}, ["body", "description"]),
    ],
)
def test_schema_violations_are_422(user_client, body, loc):
    err = error(user_client.post("/api/flows", body, format="json"), 422, "validation_error")
    assert [d["loc"] for d in err["details"]] == [loc]
    assert not Flow.objects.exists()


def test_non_object_body_is_422(user_client):
    error(user_client.post("/api/flows", [1, 2], format="json"), 422, "validation_error")


def test_invalid_definition_is_400_with_one_detail_per_problem(user_client):
    definition = {
        "tasks": [
            {"name": "fetch", "task_executor_name": "http_request", "parameters": {"bogus": 1}},
            {"name": "fetch", "task_executor_name": "noop"},
            {"name": "use", "task_executor_name": "noop", "depends_on": ["missing"]},
            {
                "name": "x",
                "task_executor_name": "noop",
                "parameters": {"output": "{{ghost.output}}"},
            },
        ],
        "extra": True,
    }
    response = user_client.post(
        "/api/flows", {"display_name": "bad", "definition": definition}, format="json"
    )
    err = error(response, 400, "bad_request")
    got = [(d["loc"], d["type"]) for d in err["details"]]
    assert got == [
        (["body", "definition", "extra"], "unknown_key"),
        (["body", "definition", "tasks", 0, "parameters", "url"], "parameters.required"),
        (
            ["body", "definition", "tasks", 0, "parameters", "bogus"],
            "parameters.additionalProperties",
        ),
        (["body", "definition", "tasks", 1, "name"], "duplicate_name"),
        (["body", "definition", "tasks", 2, "depends_on", 0], "unknown_reference"),
        (["body", "definition", "tasks", 3, "parameters", "output"], "unknown_reference"),
    ]
    assert all(isinstance(d["msg"], str) and d["msg"] for d in err["details"])
    assert not Flow.objects.exists() and not FlowVersion.objects.exists()


def test_cycle_is_reported_with_its_tasks(user_client):
    definition = {
        "tasks": [
            {"name": "a", "task_executor_name": "noop", "depends_on": ["b"]},
            {"name": "b", "task_executor_name": "noop", "depends_on": ["a"]},
        ]
    }
    response = user_client.post(
        "/api/flows", {"display_name": "cyclic", "definition": definition}, format="json"
    )
    err = error(response, 400, "bad_request")
    assert len(err["details"]) == 1
    assert err["details"][0]["type"] == "cycle"
    assert "a" in err["details"][0]["msg"] and "b" in err["details"][0]["msg"]


def test_definition_text_with_syntax_error_is_400_at_the_definition(user_client):
    response = user_client.post(
        "/api/flows",
        {"display_name": "x", "definition": "tasks:\n  - name: [oops\n"},
        format="json",
    )
    err = error(response, 400, "bad_request")
    assert [(d["loc"], d["type"]) for d in err["details"]] == [
        (["body", "definition"], "syntax_error")
    ]
    assert "line" in err["details"][0]["msg"]


# -- server-owned fields and the organization ---------------------------------------------------


@pytest.mark.parametrize("field", ["id", "version", "created_at", "updated_at", "modified_by"])
def test_server_fields_are_rejected_on_create(user_client, field):
    body = {"display_name": "x", "definition": DIAMOND, field: "2020-01-01T00:00:00Z"}
    err = error(user_client.post("/api/flows", body, format="json"), 422, "validation_error")
    assert [(d["loc"], d["type"]) for d in err["details"]] == [(["body", field], "read_only")]
    assert not Flow.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "4f1c9a52-0000-4000-8000-000000000001"),
        ("version", 7),
        ("deleted", True),
        ("created_at", "2020-01-01"),
    ],
)
def test_server_fields_cannot_be_changed_by_patch(user_client, tenant, field, value):
    flow = make_flow(tenant.organization)
    response = user_client.patch(
        f"/api/flows/{flow.id}", {field: value, "display_name": "renamed"}, format="json"
    )
    error(response, 422, "validation_error")
    stored = Flow.objects.get(id=flow.id)
    assert (stored.display_name, stored.version, stored.deleted) == ("Flow", 1, False)
    assert stored.created_at == flow.created_at


def test_foreign_organization_id_is_403(user_client, outsider):
    body = {
        "display_name": "x",
        "definition": DIAMOND,
        "organization_id": str(outsider.organization.id),
    }
    error(user_client.post("/api/flows", body, format="json"), 403, "forbidden")
    assert not Flow.objects.exists()


def test_foreign_organization_id_on_patch_is_403(user_client, tenant, outsider):
    flow = make_flow(tenant.organization)
    response = user_client.patch(
        f"/api/flows/{flow.id}",
        {"display_name": "moved", "organization_id": str(outsider.organization.id)},
        format="json",
    )
    error(response, 403, "forbidden")
    flow.refresh_from_db()
    assert (flow.organization_id, flow.display_name) == (tenant.organization.id, "Flow")


def test_own_organization_id_is_accepted(user_client, tenant):
    body = create(user_client, organization_id=str(tenant.organization.id))
    assert body["organization_id"] == str(tenant.organization.id)


# -- read and list ----------------------------------------------------------------------------


def test_retrieve(user_client, tenant):
    created = create(user_client)
    response = user_client.get(f"/api/flows/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_retrieve_unknown_is_404(user_client):
    error(user_client.get(f"/api/flows/{uuid.uuid4()}"), 404, "not_found")


def test_list_newest_first_and_only_own(user_client, tenant, outsider):
    first = make_flow(tenant.organization, display_name="first")
    second = make_flow(tenant.organization, display_name="second")
    make_flow(outsider.organization, display_name="theirs")
    response = user_client.get("/api/flows")
    assert response.status_code == 200
    assert [f["id"] for f in response.json()] == [str(second.id), str(first.id)]
    assert "Link" not in response


def test_list_filters(user_client, tenant):
    draft = make_flow(tenant.organization, display_name="draft", tags=["etl"])
    published = make_flow(
        tenant.organization, display_name="pub", status="published", tags={"team": "data"}
    )
    make_flow(tenant.organization, display_name="untagged", tags=None)

    def names(**params):
        response = user_client.get("/api/flows", params)
        assert response.status_code == 200, response.content
        return sorted(f["display_name"] for f in response.json())

    assert names(status="published") == ["pub"]
    assert names(status="draft") == ["draft", "untagged"]
    assert names(tag="etl") == ["draft"]
    assert names(tag="team") == ["pub"]
    assert names(tag="data") == []
    t0 = draft.created_at
    assert names(created_after=(t0 - timedelta(seconds=1)).isoformat()) == [
        "draft",
        "pub",
        "untagged",
    ]
    assert names(created_after=published.created_at.isoformat()) == ["untagged"]
    assert names(created_before=published.created_at.isoformat()) == ["draft"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"colour": "red"}, "colour"),
        ({"status": "archived"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"starting_after": "nope"}, "starting_after"),
        ({"created_after": "yesterday"}, "created_after"),
    ],
)
def test_bad_query_parameters_are_422(user_client, params, name):
    err = error(user_client.get("/api/flows", params), 422, "validation_error")
    assert [d["loc"] for d in err["details"]] == [["query", name]]


def test_cursor_pages_are_disjoint_ordered_and_complete(user_client, tenant):
    flows = [make_flow(tenant.organization, display_name=f"f{i}") for i in range(7)]
    expected = [str(f.id) for f in reversed(flows)]
    seen, url, pages = [], "/api/flows?limit=3", 0
    while url:
        response = user_client.get(url)
        assert response.status_code == 200
        page = [f["id"] for f in response.json()]
        assert len(page) <= 3
        seen += page
        pages += 1
        link = response.headers.get("Link")
        if link:
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            assert "limit=3" in url and f"starting_after={page[-1]}" in url
        else:
            url = None
    assert pages == 3
    assert seen == expected


def test_cursor_survives_deletion_of_its_item(user_client, tenant):
    flows = [make_flow(tenant.organization, display_name=f"f{i}") for i in range(4)]
    page = user_client.get("/api/flows?limit=2").json()
    user_client.delete(f"/api/flows/{page[-1]['id']}")
    rest = user_client.get(f"/api/flows?limit=2&starting_after={page[-1]['id']}").json()
    assert [f["id"] for f in rest] == [str(flows[1].id), str(flows[0].id)]


def test_unknown_cursor_or_one_of_another_organization_is_400(user_client, outsider):
    theirs = make_flow(outsider.organization)
    for cursor in (theirs.id, "4f1c9a52-0000-4000-8000-000000000003"):
        err = error(user_client.get(f"/api/flows?starting_after={cursor}"), 400, "bad_request")
        assert err["details"][0]["loc"] == ["query", "starting_after"]


# -- update, versions ----------------------------------------------------------------------------


def test_patch_fields(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.patch(
        f"/api/flows/{flow.id}",
        {"display_name": "renamed", "status": "published", "tags": {"k": 1}, "description": "d"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["display_name"], body["status"], body["tags"], body["description"]) == (
        "renamed",
        "published",
        {"k": 1},
        "d",
    )
    assert body["version"] == 1 and body["modified_by"] == str(tenant.user.pk)
    assert FlowVersion.objects.filter(flow=flow).count() == 1
    # null clears tags; omitted fields stay
    body = user_client.patch(f"/api/flows/{flow.id}", {"tags": None}, format="json").json()
    assert (body["tags"], body["display_name"]) == (None, "renamed")


def test_patch_with_yaml_body(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.patch(
        f"/api/flows/{flow.id}", "display_name: from yaml\n", content_type="text/yaml"
    )
    assert response.status_code == 200, response.content
    assert response.json()["display_name"] == "from yaml"


def test_patch_definition_creates_next_version(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.patch(f"/api/flows/{flow.id}", {"definition": TWO_STEPS}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert list(FlowVersion.objects.filter(flow=flow).values_list("version", flat=True)) == [2, 1]


def test_patch_with_invalid_definition_changes_nothing(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.patch(
        f"/api/flows/{flow.id}",
        {"display_name": "renamed", "definition": {"tasks": []}},
        format="json",
    )
    err = error(response, 400, "bad_request")
    assert [d["loc"] for d in err["details"]] == [["body", "definition", "tasks"]]
    flow.refresh_from_db()
    assert (flow.display_name, flow.version) == ("Flow", 1)


def test_put_definition_creates_version_and_old_executions_keep_theirs(user_client, tenant):
    flow = make_flow(tenant.organization)
    old_execution = make_flow_execution(flow)
    response = user_client.put(
        f"/api/flows/{flow.id}/definition", {"definition": TWO_STEPS}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 2
    assert [t["name"] for t in body["definition"]["tasks"]] == ["first", "second"]
    old_execution.refresh_from_db()
    assert old_execution.flow_version == 1
    new_execution = make_flow_execution(Flow.objects.get(id=flow.id))
    assert new_execution.flow_version == 2

    versions = user_client.get(f"/api/flows/{flow.id}/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    v1 = user_client.get(f"/api/flows/{flow.id}/versions/1").json()
    assert [t["name"] for t in v1["definition"]["tasks"]] == ["a", "b", "c", "d"]
    assert set(v1) == {
        "id",
        "organization_id",
        "flow_id",
        "version",
        "definition",
        "created_at",
        "created_by",
    }
    assert (v1["flow_id"], v1["version"], v1["created_by"]) == (str(flow.id), 1, "test")


def test_put_same_definition_creates_no_version(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.put(
        f"/api/flows/{flow.id}/definition", {"definition": DIAMOND_YAML}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert FlowVersion.objects.filter(flow=flow).count() == 1


def test_put_definition_as_raw_yaml(user_client, tenant):
    flow = make_flow(tenant.organization, definition=TWO_STEPS)
    response = user_client.put(
        f"/api/flows/{flow.id}/definition", DIAMOND_YAML, content_type="application/yaml"
    )
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert len(response.json()["definition"]["tasks"]) == 4


def test_put_invalid_raw_yaml_is_400_with_position(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.put(
        f"/api/flows/{flow.id}/definition",
        "tasks:\n  - name: a\n    parameters: {url: {{input.url}}}\n",
        content_type="application/yaml",
    )
    err = error(response, 400, "bad_request")
    assert err["details"][0]["loc"] == ["body", "definition"]
    assert "line 3" in err["details"][0]["msg"]
    assert Flow.objects.get(id=flow.id).version == 1


def test_put_definition_missing_is_422(user_client, tenant):
    flow = make_flow(tenant.organization)
    err = error(
        user_client.put(f"/api/flows/{flow.id}/definition", {}, format="json"),
        422,
        "validation_error",
    )
    assert err["details"][0]["loc"] == ["body", "definition"]


def test_versions_pagination_and_unknown_version(user_client, tenant):
    flow = make_flow(tenant.organization)
    for n in range(2, 5):
        tasks = [{"name": f"t{i}", "task_executor_name": "noop"} for i in range(n)]
        user_client.put(
            f"/api/flows/{flow.id}/definition", {"definition": {"tasks": tasks}}, format="json"
        )
    first = user_client.get(f"/api/flows/{flow.id}/versions?limit=3")
    assert [v["version"] for v in first.json()] == [4, 3, 2]
    assert 'rel="next"' in first["Link"]
    rest = user_client.get(
        f"/api/flows/{flow.id}/versions?limit=3&starting_after={first.json()[-1]['id']}"
    )
    assert [v["version"] for v in rest.json()] == [1]
    assert "Link" not in rest
    error(user_client.get(f"/api/flows/{flow.id}/versions/5"), 404, "not_found")


# -- validate -----------------------------------------------------------------------------------


def test_validate_valid_definition(user_client, tenant):
    flow = make_flow(tenant.organization, definition=TWO_STEPS)
    response = user_client.post(
        f"/api/flows/{flow.id}/validate", {"definition": DIAMOND}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["valid"] is True
    assert body["order"] == ["a", "b", "c", "d"]
    assert [t["name"] for t in body["tasks"]] == ["a", "b", "c", "d"]
    assert body["tasks"][3]["dependencies"] == ["b", "c"]
    assert Flow.objects.get(id=flow.id).version == 1  # nothing saved


def test_validate_stored_definition_when_body_is_empty(user_client, tenant):
    flow = make_flow(tenant.organization, definition=TWO_STEPS)
    response = user_client.post(f"/api/flows/{flow.id}/validate", {}, format="json")
    assert response.status_code == 200
    assert response.json()["order"] == ["first", "second"]


def test_validate_invalid_definition_is_400(user_client, tenant):
    flow = make_flow(tenant.organization)
    bad = {
        "tasks": [{"name": "a", "task_executor_name": "BAD NAME"}, {"task_executor_name": "noop"}]
    }
    err = error(
        user_client.post(f"/api/flows/{flow.id}/validate", {"definition": bad}, format="json"),
        400,
        "bad_request",
    )
    assert [(d["loc"], d["type"]) for d in err["details"]] == [
        (["body", "definition", "tasks", 0, "task_executor_name"], "invalid_executor_name"),
        (["body", "definition", "tasks", 1, "name"], "missing"),
    ]


def test_validate_without_flow(user_client):
    response = user_client.post("/api/flows/validate", DIAMOND_YAML, content_type="text/yaml")
    assert response.status_code == 200, response.content
    assert response.json()["order"] == ["a", "b", "c", "d"]
    assert not Flow.objects.exists()
    bad = user_client.post("/api/flows/validate", {"definition": "tasks: 5"}, format="json")
    assert error(bad, 400, "bad_request")["details"][0]["loc"] == ["body", "definition", "tasks"]


# -- delete ---------------------------------------------------------------------------------------


def test_delete_is_soft_idempotent_and_hides_the_flow(user_client, tenant):
    flow = make_flow(tenant.organization)
    response = user_client.delete(f"/api/flows/{flow.id}")
    assert response.status_code == 204 and response.content == b""
    stored = Flow.objects.get(id=flow.id)
    assert stored.deleted is True and stored.modified_by == str(tenant.user.pk)
    assert user_client.delete(f"/api/flows/{flow.id}").status_code == 204
    error(user_client.get(f"/api/flows/{flow.id}"), 404, "not_found")
    error(
        user_client.patch(f"/api/flows/{flow.id}", {"display_name": "x"}, format="json"),
        404,
        "not_found",
    )
    error(user_client.get(f"/api/flows/{flow.id}/versions"), 404, "not_found")
    assert user_client.get("/api/flows").json() == []


def test_delete_unknown_is_404(user_client):
    error(user_client.delete(f"/api/flows/{uuid.uuid4()}"), 404, "not_found")


# -- tenancy and permissions ---------------------------------------------------------------------

FLOW_ROUTES = [
    ("get", "/api/flows/{id}", None),
    ("patch", "/api/flows/{id}", {"display_name": "mine now"}),
    ("delete", "/api/flows/{id}", None),
    ("put", "/api/flows/{id}/definition", {"definition": TWO_STEPS}),
    ("post", "/api/flows/{id}/validate", {"definition": TWO_STEPS}),
    ("post", "/api/flows/{id}/validate", {}),
    ("get", "/api/flows/{id}/versions", None),
    ("get", "/api/flows/{id}/versions/1", None),
]


@pytest.mark.parametrize(("method", "route", "body"), FLOW_ROUTES)
def test_another_organizations_flow_is_404_everywhere(user_client, outsider, method, route, body):
    theirs = make_flow(outsider.organization)
    response = getattr(user_client, method)(route.format(id=theirs.id), body, format="json")
    err = error(response, 404, "not_found")
    # Exactly like a missing flow: same status, code and message.
    missing = uuid.uuid4()
    response = getattr(user_client, method)(route.format(id=missing), body, format="json")
    missing_err = error(response, 404, "not_found")
    assert err["message"].replace(str(theirs.id), "ID") == missing_err["message"].replace(
        str(missing), "ID"
    )
    stored = Flow.objects.get(id=theirs.id)
    assert (stored.display_name, stored.version, stored.deleted) == ("Flow", 1, False)


ALL_FLOW_ROUTES = [
    ("get", "/api/flows", None),
    ("post", "/api/flows", {"display_name": "x", "definition": DIAMOND}),
    ("post", "/api/flows/validate", {"definition": DIAMOND}),
    *FLOW_ROUTES,
]


@pytest.mark.parametrize(("method", "route", "body"), ALL_FLOW_ROUTES)
def test_service_keys_are_forbidden_on_flow_routes(service_client, tenant, method, route, body):
    flow = make_flow(tenant.organization)
    response = getattr(service_client, method)(route.format(id=flow.id), body, format="json")
    error(response, 403, "forbidden")
    stored = Flow.objects.get(id=flow.id)
    assert (stored.display_name, stored.version, stored.deleted) == ("Flow", 1, False)


@pytest.mark.parametrize(("method", "route", "body"), ALL_FLOW_ROUTES)
def test_anonymous_is_401_on_flow_routes(anon_client, tenant, method, route, body):
    flow = make_flow(tenant.organization)
    response = getattr(anon_client, method)(route.format(id=flow.id), body, format="json")
    error(response, 401, "unauthorized")


def test_read_only_user_key_reads_but_cannot_write(tenant):
    _, raw = create_api_key(
        organization=tenant.organization, kind="user", user=tenant.user, read_only=True
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    flow = make_flow(tenant.organization)
    assert client.get("/api/flows").status_code == 200
    assert client.get(f"/api/flows/{flow.id}").status_code == 200
    error(
        client.post("/api/flows", {"display_name": "x", "definition": DIAMOND}, format="json"),
        403,
        "forbidden",
    )
    error(client.delete(f"/api/flows/{flow.id}"), 403, "forbidden")
    assert Flow.objects.get(id=flow.id).deleted is False
