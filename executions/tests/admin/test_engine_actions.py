"""The admin's engine actions against the real engine: executions are started, reported and
edited through the public API (as the workers and people do), then operated on by staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from executions.models import FlowExecution, TaskExecution
from executions.services.flows import create_flow

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:executions_flowexecution_changelist")
TWO_STEPS = {
    "tasks": [
        {"name": "first", "task_executor_name": "noop"},
        {"name": "second", "task_executor_name": "noop", "depends_on": ["first"]},
    ]
}


class Run:
    """One organization's flow and executions, driven over the API."""

    def __init__(self, tenant) -> None:  # noqa: ANN001
        self.tenant = tenant
        self.user = tenant.client("user")
        self.service = tenant.client("service")
        self.flow = create_flow(
            organization=tenant.organization,
            actor="test",
            display_name=f"{tenant.organization.name} two steps",
            definition=TWO_STEPS,
        )

    def start(self) -> FlowExecution:
        response = self.user.post(
            "/api/flow-executions", {"flow_id": str(self.flow.id), "input": {"x": 1}}
        )
        assert response.status_code == 201, response.content
        return FlowExecution.objects.get(pk=response.json()["id"])

    def report(self, execution: FlowExecution, task: str, status: str, **body: Any) -> dict:
        response = self.service.post(
            "/api/task-executions",
            {
                "flow_execution_id": str(execution.pk),
                "task_name": task,
                "task_execution_idx": 0,
                "status": status,
                **body,
            },
        )
        assert response.status_code in (200, 201), response.content
        return response.json()

    def completed(self) -> tuple[FlowExecution, dict]:
        execution = self.start()
        first = self.report(execution, "first", "completed", output={"n": 1})
        self.report(execution, "second", "completed", output={"n": 2})
        execution.refresh_from_db()
        assert execution.status == "completed"
        return execution, first

    def edit(self, execution: FlowExecution, task: dict, output: Any) -> None:
        response = self.user.put(
            "/api/task-executions",
            {"id": task["id"], "flow_execution_id": str(execution.pk), "output": output},
        )
        assert response.status_code == 200, response.content


@pytest.fixture
def runs(tenant, outsider) -> list[Run]:  # noqa: ANN001
    return [Run(tenant), Run(outsider)]


def _act(client, action: str, executions: list[FlowExecution]):  # noqa: ANN001, ANN202
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(e.pk) for e in executions]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def _logged(execution: FlowExecution, user) -> bool:  # noqa: ANN001
    return LogEntry.objects.filter(
        object_id=str(execution.pk), action_flag=CHANGE, user=user
    ).exists()


def test_cancel_running_executions_of_two_organizations(staff_client, staff_user, runs):  # noqa: ANN001
    executions = [run.start() for run in runs]
    assert {e.status for e in executions} == {"running"}
    messages = _act(staff_client, "cancel", executions)
    assert "Cancellation requested: 2 rows." in messages
    for execution in executions:
        execution.refresh_from_db()
        assert execution.status == "cancelled"
        assert execution.modified_by == str(staff_user.pk)
        assert _logged(execution, staff_user)
        assert not execution.task_executions.exclude(status="cancelled").exists()


def test_cancel_of_a_finished_execution_is_an_error_message(staff_client, staff_user, runs):  # noqa: ANN001
    execution, _ = runs[0].completed()
    messages = _act(staff_client, "cancel", [execution])
    assert any("cannot be cancelled" in m for m in messages), messages
    execution.refresh_from_db()
    assert execution.status == "completed"
    assert not _logged(execution, staff_user)


def test_reexecute_runs_every_task_again(staff_client, staff_user, runs):  # noqa: ANN001
    execution, _ = runs[1].completed()
    messages = _act(staff_client, "reexecute", [execution])
    assert "Re-executed: 1 row." in messages
    execution.refresh_from_db()
    assert execution.status == "running"
    assert execution.modified_by == str(staff_user.pk)
    again = TaskExecution.objects.get(flow_execution=execution, task_execution_idx=1)
    assert (again.task_name, again.status) == ("first", "queued")
    assert _logged(execution, staff_user)


def test_reexecute_while_running_is_an_error_message(staff_client, runs):  # noqa: ANN001
    execution = runs[0].start()
    messages = _act(staff_client, "reexecute", [execution])
    assert any("wait for it to finish" in m for m in messages), messages
    assert not TaskExecution.objects.filter(flow_execution=execution, task_execution_idx=1)


def test_reexecute_stale_only_queues_exactly_the_stale_tasks(staff_client, staff_user, runs):  # noqa: ANN001
    run = runs[0]
    execution, first = run.completed()
    run.edit(execution, first, {"n": 10})
    execution.refresh_from_db()
    assert execution.status == "stale"
    messages = _act(staff_client, "reexecute_stale", [execution])
    assert "Re-executed the stale tasks: 1 row." in messages
    execution.refresh_from_db()
    assert execution.status == "running"
    assert execution.modified_by == str(staff_user.pk)
    rerun = TaskExecution.objects.filter(flow_execution=execution, task_execution_idx=1)
    assert [(t.task_name, t.status) for t in rerun] == [("second", "queued")]


def test_reexecute_stale_with_nothing_stale_says_so(staff_client, staff_user, runs):  # noqa: ANN001
    execution, _ = runs[1].completed()
    messages = _act(staff_client, "reexecute_stale", [execution])
    assert any("nothing to do" in m for m in messages), messages
    execution.refresh_from_db()
    assert execution.status == "completed"
    assert not _logged(execution, staff_user)


def test_change_page_button_cancels(staff_client, staff_user, runs):  # noqa: ANN001
    execution = runs[1].start()
    url = reverse("admin:executions_flowexecution_operate", args=[execution.pk, "cancel"])
    response = staff_client.post(url, follow=True)
    assert response.status_code == 200
    execution.refresh_from_db()
    assert execution.status == "cancelled" and execution.modified_by == str(staff_user.pk)
    page = response.content.decode()
    assert "fp-status-cancelled" in page and "Cancellation requested: 1 row." in page
