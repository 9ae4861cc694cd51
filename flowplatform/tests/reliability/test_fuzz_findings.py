"""Row 1's findings, each pinned by a fast in-process test (the fuzzer finds them again only by
chance). Every one was a 500 or a response the OpenAPI schema did not allow."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from executions.tests.factories import make_flow, make_flow_execution
from outputs.models import TaskOutput


@pytest.fixture
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.django_db
def test_nul_characters_and_lone_surrogates_in_json_values_are_422_not_500(tenant):
    execution = make_flow_execution(make_flow(tenant.organization))
    client = tenant.client("service")
    for value in ("a\u0000b", {"k\u0000": 1}, ["\ud800"]):
        body = json.dumps(
            {"flow_execution_id": str(execution.id), "task_name": "a", "summary": value}
        )
        response = client.post("/api/task-outputs", body, content_type="application/json")
        assert response.status_code == 422, response.content
        assert response.json()["error"]["details"][0]["loc"][:2] == ["body", "summary"]


@pytest.mark.django_db
def test_a_yaml_definition_spelling_a_nul_is_400_not_500(tenant):
    client = tenant.client("user")
    text = 'tasks:\n  - name: a\n    task_executor_name: noop\n    parameters: {x: "\\0"}\n'
    response = client.post("/api/flows", {"display_name": "f", "definition": text}, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.django_db
def test_integers_wider_than_64_bits_are_refused_and_stored_ones_still_render(tenant):
    execution = make_flow_execution(make_flow(tenant.organization))
    client = tenant.client("service")
    before = list(TaskOutput.objects.filter(flow_execution=execution).values())
    body = {"flow_execution_id": str(execution.id), "task_name": "a", "summary": 2**70}
    refused = client.post("/api/task-outputs", body, format="json")
    assert refused.status_code == 422, refused.content
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "summary"]
    assert list(TaskOutput.objects.filter(flow_execution=execution).values()) == before
    # A row stored before the bound (or by hand) is still written exactly.
    row, _ = TaskOutput.objects.update_or_create(
        organization=tenant.organization,
        flow_execution=execution,
        task_name="a",
        defaults={"summary": 2**70},
    )
    assert client.get(f"/api/task-outputs/{row.id}").json()["summary"] == 2**70


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("wait_seconds", False), ("limit", "3"), ("limit", 2.0), ("worker_id", 7)],
)
def test_json_values_of_the_wrong_type_are_422_not_coerced(tenant, field, value):
    body = {"worker_id": "w", "executors": ["noop"], field: value}
    response = tenant.client("service").post("/api/task-executions/claim", body, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["error"]["details"][0]["loc"] == ["body", field]


@pytest.mark.django_db
def test_a_blank_after_trimming_value_is_refused_and_the_schema_says_so(tenant, schema):
    body = {"worker_id": "w", "executors": ["\t"]}
    response = tenant.client("service").post("/api/task-executions/claim", body, format="json")
    assert response.status_code == 422
    items = schema["components"]["schemas"]["ClaimInputRequest"]["properties"]["executors"]
    assert "pattern" in items["items"]
    # Outputs are documented as rendered: an empty description is fine there.
    assert "pattern" not in schema["components"]["schemas"]["FlowOut"]["properties"]["description"]


def test_either_api_key_header_alone_is_a_security_requirement(schema):
    security = schema["paths"]["/api/me"]["get"]["security"]
    assert {"ApiKeyBearer": []} in security and {"ApiKeyHeader": []} in security


def test_bodies_with_required_fields_are_required(schema):
    for path in ("/api/flows/validate", "/api/flows/{flow_id}/definition"):
        method = "post" if path.endswith("validate") else "put"
        assert schema["paths"][path][method]["requestBody"]["required"] is True


def test_documented_status_codes(schema):
    assert "404" in schema["paths"]["/api/flow-executions"]["post"]["responses"]
    assert "400" in schema["paths"]["/api/flows"]["get"]["responses"]  # an unknown cursor


@pytest.mark.django_db
def test_unknown_api_paths_with_odd_characters_get_the_envelope(tenant):
    response = tenant.client("user").get("/api/flow-executions/4%0Ad/execute")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_contradictory_execute_options_are_400(tenant):
    execution = make_flow_execution(make_flow(tenant.organization))
    response = tenant.client("user").post(
        f"/api/flow-executions/{execution.id}/execute?only_stale=true&only_failed=true"
    )
    assert response.status_code == 400
