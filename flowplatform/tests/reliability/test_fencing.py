"""Lease fencing: while a task execution is leased, only its lease holder's report changes it.

Found by an adversarial run: a report without ``worker_id`` (service or user key) completed a
task another worker held, and the holder's real result was then refused with 409 and lost.
Now a report that is not the holder's is the 409, and the holder's result is kept.
"""

from __future__ import annotations

import pytest

from executions.models import TaskExecution
from executions.tests.engine.factories import shape_definition, start
from flowplatform.tests.reliability.figures import figure

pytestmark = pytest.mark.django_db

URL = "/api/task-executions"


@pytest.fixture
def leased(tenant, service_client):
    """A task execution claimed by worker ``holder``."""
    start(tenant.organization, shape_definition({"a": []}))
    response = service_client.post(
        f"{URL}/claim", {"worker_id": "holder", "executors": ["noop"]}, format="json"
    )
    (item,) = response.json()["task_executions"]
    return TaskExecution.objects.get(id=item["id"])


def report(task: TaskExecution, **extra) -> dict:
    body = {
        "flow_execution_id": str(task.flow_execution_id),
        "task_name": task.task_name,
        "task_execution_idx": task.task_execution_idx,
        "status": "completed",
        "output": {"by": "intruder"},
    }
    body.update(extra)
    return {key: value for key, value in body.items() if value is not None}


def unchanged(task: TaskExecution) -> bool:
    stored = TaskExecution.objects.get(id=task.id)
    return (stored.status, stored.output, stored.lease_owner, stored.updated_at) == (
        "running",
        None,
        "holder",
        task.updated_at,
    )


@pytest.mark.parametrize(
    ("key", "worker_id"),
    [
        ("service", None),
        ("service", "someone-else"),
        ("user", None),
        ("user", "holder"),  # a user key may not speak for the worker
    ],
)
def test_only_the_lease_holder_changes_a_leased_task(tenant, leased, key, worker_id):
    client = tenant.client(key)
    response = client.post(URL, report(leased, worker_id=worker_id), format="json")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "conflict"
    assert unchanged(leased)

    holder = tenant.client("service").post(
        URL, report(leased, worker_id="holder", output={"by": "holder"}), format="json"
    )
    assert holder.status_code == 200, holder.content
    stored = TaskExecution.objects.get(id=leased.id)
    assert (stored.status, stored.output) == ("completed", {"by": "holder"})
    figure(
        13,
        "lease fencing",
        probe=f"{key} key, worker_id={worker_id!r}",
        answered=response.status_code,
        holder_result_kept=True,
    )


def test_a_person_still_edits_a_leased_task_with_put(user_client, leased):
    response = user_client.put(
        URL, {"id": str(leased.id), "status": "failed", "error": {"message": "stop"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert TaskExecution.objects.get(id=leased.id).status == "failed"


def test_a_task_no_worker_holds_takes_any_service_or_user_report(tenant, user_client):
    execution = start(tenant.organization, shape_definition({"a": []}))
    task = TaskExecution.objects.get(flow_execution=execution)
    response = user_client.post(URL, report(task), format="json")
    assert response.status_code == 200, response.content
    assert TaskExecution.objects.get(id=task.id).status == "completed"
