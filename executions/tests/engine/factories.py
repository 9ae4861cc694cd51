"""Flows, flow executions and worker moves for the engine and task-execution tests.

Definitions are written as ``{task: [dependencies]}`` shapes turned into noop flows whose
tasks pass their upstream outputs on (``{{dep.output}}``), so a test can see which outputs an
input was resolved from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rest_framework.test import APIClient

from executions import dsl
from executions.engine import lifecycle
from executions.enums import TaskExecutionStatus
from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution
from flowplatform.models import Organization

TE = TaskExecutionStatus

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
# The diamond plus an independent chain x → y: edits of the diamond must not touch it.
DIAMOND_AND_CHAIN = {**DIAMOND, "x": [], "y": ["x"]}


def noop_task(name: str, deps: Sequence[str], **extra: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {"task": name}
    parameters.update({f"from_{dep}": f"{{{{{dep}.output}}}}" for dep in deps})
    return {"name": name, "task_executor_name": "noop", "parameters": parameters, **extra}


def shape_definition(shape: Mapping[str, Sequence[str]], **per_task: dict[str, Any]) -> dict:
    """A definition for ``{task: deps}``; ``per_task[name]`` overrides that task's keys."""
    return {
        "tasks": [
            {**noop_task(name, deps), **per_task.get(name, {})} for name, deps in shape.items()
        ]
    }


def make_flow(organization: Organization, definition: Any, *, name: str = "flow") -> Flow:
    canonical = dsl.validate_definition(definition).to_dict()
    flow = Flow.objects.create(
        organization=organization, display_name=name, definition=canonical, version=1
    )
    FlowVersion.objects.create(
        organization=organization, flow=flow, version=1, definition=canonical
    )
    return flow


def create_execution(flow: Flow, *, input: Any = None) -> FlowExecution:
    return FlowExecution.objects.create(
        organization_id=flow.organization_id, flow=flow, flow_version=flow.version, input=input
    )


def start(
    organization: Organization, definition: Any, *, input: Any = None, flow: Flow | None = None
) -> FlowExecution:
    flow = flow or make_flow(organization, definition)
    execution = create_execution(flow, input=input)
    return lifecycle.start_flow_execution(execution=execution, actor="system")


def latest(execution: FlowExecution, name: str) -> TaskExecution:
    return (
        TaskExecution.objects.filter(flow_execution=execution, task_name=name)
        .order_by("-task_execution_idx")
        .first()
    )


def statuses(execution: FlowExecution) -> dict[str, list[tuple[int, str]]]:
    """``{task: [(idx, status), ...]}`` in index order."""
    result: dict[str, list[tuple[int, str]]] = {}
    rows = TaskExecution.objects.filter(flow_execution=execution).order_by(
        "task_name", "task_execution_idx"
    )
    for row in rows:
        result.setdefault(row.task_name, []).append((row.task_execution_idx, row.status))
    return result


def queued_names(execution: FlowExecution) -> set[str]:
    return set(
        TaskExecution.objects.filter(flow_execution=execution, status=TE.QUEUED).values_list(
            "task_name", flat=True
        )
    )


def refresh(execution: FlowExecution) -> FlowExecution:
    execution.refresh_from_db()
    return execution


def completed_report(task: Mapping[str, Any], **body: Any) -> dict[str, Any]:
    """The body of a worker's report that a claimed ``task`` completed (``body`` overrides)."""
    return {
        "flow_execution_id": task["flow_execution_id"],
        "task_name": task["task_name"],
        "task_execution_idx": task["task_execution_idx"],
        "status": "completed",
        "output": {"done": task["task_name"]},
        "worker_id": "worker-1",
        **body,
    }


class Worker:
    """Claims and reports over the real API with a service key, like the HTTP worker."""

    def __init__(self, client: APIClient, worker_id: str = "worker-1") -> None:
        self.client = client
        self.worker_id = worker_id

    def claim(self, *, executors: Sequence[str] = ("noop",), limit: int = 50) -> list[dict]:
        response = self.client.post(
            "/api/task-executions/claim",
            {"worker_id": self.worker_id, "executors": list(executors), "limit": limit},
            format="json",
        )
        assert response.status_code == 200, response.content
        return response.json()["task_executions"]

    def report(self, task: Mapping[str, Any], status: str = "completed", **body: Any) -> Any:
        payload = {
            "flow_execution_id": task["flow_execution_id"],
            "task_name": task["task_name"],
            "task_execution_idx": task["task_execution_idx"],
            "status": status,
            "worker_id": self.worker_id,
            **body,
        }
        if status == "completed" and "output" not in body:
            payload["output"] = {"done": task["task_name"], "input": task.get("input")}
        return self.client.post("/api/task-executions", payload, format="json")

    def run_all(self, *, fail: Sequence[str] = (), rounds: int = 50) -> list[dict]:
        """Claim and complete (or fail, for names in ``fail``) until nothing is claimable."""
        done: list[dict] = []
        for _ in range(rounds):
            tasks = self.claim()
            if not tasks:
                return done
            for task in tasks:
                if task["task_name"] in fail:
                    error = {"message": "boom", "type": "RuntimeError", "traceback": ""}
                    response = self.report(task, "failed", error=error)
                else:
                    response = self.report(task)
                assert response.status_code == 200, response.content
                done.append(task)
        raise AssertionError("work did not run out")
