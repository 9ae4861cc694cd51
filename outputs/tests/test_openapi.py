"""The OpenAPI document describes the three task-output operations as they behave."""

from __future__ import annotations

import pytest

from outputs.representations import task_output_data
from outputs.tests.factories import make_output

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(anon_client) -> dict:  # noqa: ANN001
    response = anon_client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    if "allOf" in node and len(node["allOf"]) == 1:
        return resolve(schema, node["allOf"][0])
    return node


def json_body(schema: dict, response: dict) -> dict:
    return resolve(schema, response["content"]["application/json"]["schema"])


def test_list_is_an_array_of_task_outputs_with_its_query_parameters(schema):
    op = schema["paths"]["/api/task-outputs"]["get"]
    assert op["operationId"] == "list_task_outputs"
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert set(params) == {
        "flow_execution_id",
        "task_name",
        "status",
        "created_after",
        "created_before",
        "limit",
        "starting_after",
    }
    assert not any(p.get("required") for p in params.values())
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["flow_execution_id"]["schema"]["format"] == "uuid"
    assert params["starting_after"]["schema"]["format"] == "uuid"
    assert params["created_after"]["schema"]["format"] == "date-time"
    assert "deleted" not in resolve(schema, params["status"]["schema"])["enum"]
    ok = op["responses"]["200"]
    body = json_body(schema, ok)
    assert body["type"] == "array"
    assert body["items"] == {"$ref": "#/components/schemas/TaskOutputOut"}
    assert "Link" in ok["headers"]
    assert {"401", "422", "500"} <= set(op["responses"])


def test_create_documents_its_body_and_every_status(schema):
    op = schema["paths"]["/api/task-outputs"]["post"]
    assert op["operationId"] == "create_task_output"
    request = json_body(schema, op["requestBody"])
    assert set(request["required"]) == {"flow_execution_id", "task_name", "summary"}
    props = request["properties"]
    assert props["task_name"]["minLength"] == 1 and props["task_name"]["maxLength"] == 200
    assert props["summary"].get("nullable") is True and "type" not in props["summary"]
    assert set(resolve(schema, props["status"])["enum"]) == {
        "queued",
        "running",
        "in_progress",
        "completed",
        "failed",
        "deleted",
        "stale",
    }
    for code in ("200", "201"):
        assert json_body(schema, op["responses"][code]) == resolve(
            schema, {"$ref": "#/components/schemas/TaskOutputOut"}
        )
    assert {"400", "401", "403", "404", "422"} <= set(op["responses"])


def test_retrieve_documents_the_uuid_path_and_404(schema):
    op = schema["paths"]["/api/task-outputs/{task_output_id}"]["get"]
    assert op["operationId"] == "get_task_output"
    (param,) = [p for p in op["parameters"] if p["in"] == "path"]
    assert param["name"] == "task_output_id" and param["schema"]["format"] == "uuid"
    assert {"200", "401", "404"} <= set(op["responses"])


def test_the_task_output_schema_matches_what_is_rendered(schema, flow_execution):
    component = schema["components"]["schemas"]["TaskOutputOut"]
    rendered = task_output_data(make_output(flow_execution, "a"))
    assert set(component["properties"]) == set(rendered)
    assert set(component["required"]) == set(rendered)
    for name in ("summary", "output", "tags", "flow_version"):
        assert component["properties"][name].get("nullable") is True
