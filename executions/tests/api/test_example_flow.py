"""The demo's example flow runs to completion unattended, with the real built-in executors."""

from __future__ import annotations

import pytest
from django.conf import settings

from executions.examples import EXAMPLE_INPUT, ensure_example_flow
from executions.worker.executors import ExecutionContext, builtin_registry
from executions.worker.specs import BUILTIN_EXECUTORS

pytestmark = pytest.mark.django_db

CLAIMABLE = [name for name, spec in BUILTIN_EXECUTORS.items() if spec.claimable]


def run_claimed_tasks(service_client) -> list[str]:  # noqa: ANN001
    """Act as a worker over the API: claim, run with the built-in executors, report."""
    registry = builtin_registry()
    context = ExecutionContext(python_callables=settings.FLOWPLATFORM_PYTHON_CALLABLES)
    ran: list[str] = []
    for _ in range(20):
        response = service_client.post(
            "/api/task-executions/claim",
            {"worker_id": "w1", "executors": CLAIMABLE, "limit": 10},
            format="json",
        )
        assert response.status_code == 200, response.content
        claimed = response.json()["task_executions"]
        if not claimed:
            return ran
        for task in claimed:
            result = registry.run(task["task_executor_name"], task["input"], context)
            report = {
                "flow_execution_id": task["flow_execution_id"],
                "task_name": task["task_name"],
                "task_execution_idx": task["task_execution_idx"],
                "status": "completed",
                "output": result.output,
                "worker_id": "w1",
            }
            response = service_client.post("/api/task-executions", report, format="json")
            assert response.status_code in (200, 201), response.content
            ran.append(task["task_name"])
    raise AssertionError("the example flow did not run out of work")


def test_example_flow_completes_unattended(tenant, user_client, service_client):
    flow = ensure_example_flow(organization=tenant.organization, actor=str(tenant.user.pk))
    response = user_client.post(
        "/api/flow-executions", {"flow_id": str(flow.id), "input": EXAMPLE_INPUT}, format="json"
    )
    assert response.status_code == 201, response.content
    execution_id = response.json()["id"]

    ran = run_claimed_tasks(service_client)

    assert ran[0] == "prepare" and ran[-2:] == ["report", "done"]
    assert sorted(ran) == ["check_rows", "done", "prepare", "report", "total_fees"]
    detail = user_client.get(f"/api/flow-executions/{execution_id}").json()
    assert detail["status"] == "completed"
    outputs = {o["task_name"]: o for o in detail["task_outputs"]}
    assert all(o["status"] == "completed" for o in outputs.values())
    report = outputs["report"]["output"]
    assert report["total_fees"] == 12.5
    assert [row["id"] for row in report["valid_rows"]] == [1, 3]
    assert [row["row"]["id"] for row in report["invalid_rows"]] == [2]
    assert report["headline"] == "ada: fees 12.5"
