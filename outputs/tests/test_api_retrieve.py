"""GET /api/task-outputs/{id}."""

from __future__ import annotations

import uuid

import pytest

from outputs.representations import task_output_data
from outputs.tests.factories import make_output

pytestmark = pytest.mark.django_db


def test_retrieve_returns_the_output(user_client, flow_execution):
    row = make_output(flow_execution, "a", output={"x": 1}, tags=["t"], status="completed")
    response = user_client.get(f"/api/task-outputs/{row.id}")
    assert response.status_code == 200
    assert response.json() == task_output_data(row)


@pytest.mark.parametrize(
    "task_output_id",
    [
        "0b7c5a3e-5f0c-4d5e-9a57-1c1b2f3e4d5a",
        "not-a-uuid",
        "123",
        "00000000-0000-0000-0000-00000000000g",
    ],
)
def test_unknown_or_malformed_id_is_404(service_client, task_output_id):
    response = service_client.get(f"/api/task-outputs/{task_output_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_foreign_id_is_404_like_a_missing_one(service_client, outsider_execution):
    foreign = make_output(outsider_execution, "a")
    response = service_client.get(f"/api/task-outputs/{foreign.id}")
    missing = service_client.get(f"/api/task-outputs/{uuid.uuid4()}")
    assert response.status_code == missing.status_code == 404
    assert response.json()["error"] == missing.json()["error"]


def test_soft_deleted_output_is_404(service_client, flow_execution):
    row = make_output(flow_execution, "a", status="deleted")
    assert service_client.get(f"/api/task-outputs/{row.id}").status_code == 404


def test_missing_credentials_is_401(anon_client, flow_execution):
    row = make_output(flow_execution, "a")
    response = anon_client.get(f"/api/task-outputs/{row.id}")
    assert response.status_code == 401
