"""Helpers of the tenant-wall tests: the API's operations as its OpenAPI schema lists them,
the objects of an organization to aim them at, and a valid body for each write."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drf_spectacular.generators import SchemaGenerator

from executions.engine import leases
from executions.models import FlowExecution, TaskExecution, TaskStatus
from executions.tests.factories import make_flow, make_flow_execution
from outputs.models import TaskOutput

PARAM = re.compile(r"{([a-z_]+)}")
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # template, e.g. /api/flows/{flow_id}

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    def url(self, ids: dict[str, Any]) -> str:
        return PARAM.sub(lambda m: str(ids[m.group(1)]), self.path)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations() -> list[Operation]:
    """Every operation the live schema documents (new routes are covered automatically)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        Operation(method, path)
        for path, item in schema["paths"].items()
        for method in METHODS
        if method in item
    ]


@dataclass
class Objects:
    """One of each object of an organization, by the path parameter that names it."""

    flow_id: str
    version: int
    flow_execution_id: str
    task_execution_id: str  # running, leased to ``worker_id``
    queued_task_execution_id: str
    task_output_id: str
    worker_id: str

    @property
    def ids(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "version": self.version,
            "flow_execution_id": self.flow_execution_id,
            "task_execution_id": self.task_execution_id,
            "task_output_id": self.task_output_id,
        }


def make_objects(organization: Any, *, worker_id: str = "w-1") -> Objects:
    """A diamond flow, an execution whose root task ``a`` runs under ``worker_id``'s lease,
    a second execution with ``a`` queued, and their task outputs."""
    flow = make_flow(organization, display_name=f"walls-{organization.name}")
    running = make_flow_execution(flow)
    leases.claim_task_executions(
        organization=organization, worker_id=worker_id, executors=["noop"], limit=1
    )
    queued = make_flow_execution(flow)
    task = TaskExecution.objects.get(flow_execution=running, task_name="a")
    assert task.status == "running"
    output = TaskOutput.objects.filter(flow_execution=running).first()
    assert output is not None
    return Objects(
        flow_id=str(flow.id),
        version=1,
        flow_execution_id=str(running.id),
        task_execution_id=str(task.id),
        queued_task_execution_id=str(
            TaskExecution.objects.get(flow_execution=queued, task_name="a").id
        ),
        task_output_id=str(output.id),
        worker_id=worker_id,
    )


def body_for(operation: Operation, target: Objects) -> dict[str, Any] | None:
    """A body that passes validation, so the only reason to refuse is the object."""
    path, method = operation.path, operation.method
    if method in ("get", "delete"):
        return None
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/api/flows"): {"display_name": "x", "definition": {"tasks": []}},
        ("patch", "/api/flows/{flow_id}"): {"description": "changed by another organization"},
        ("put", "/api/flows/{flow_id}/definition"): {
            "definition": {"tasks": [{"name": "z", "task_executor_name": "noop"}]}
        },
        ("post", "/api/flows/{flow_id}/validate"): {},
        ("post", "/api/flows/validate"): {"definition": {"tasks": []}},
        ("post", "/api/flow-executions"): {"flow_id": target.flow_id, "input": {}},
        ("post", "/api/flow-executions/{flow_execution_id}/task-status"): {
            "statuses": [{"task_name": "a", "status": "hacked"}]
        },
        ("post", "/api/task-executions"): {
            "flow_execution_id": target.flow_execution_id,
            "task_name": "a",
            "task_execution_idx": 0,
            "status": "completed",
            "output": "hacked",
            "worker_id": target.worker_id,
        },
        ("put", "/api/task-executions"): {"id": target.task_execution_id, "output": "hacked"},
        ("post", "/api/task-executions/{task_execution_id}/heartbeat"): {
            "worker_id": target.worker_id
        },
        ("post", "/api/task-executions/{task_execution_id}/release"): {
            "worker_id": target.worker_id
        },
        ("post", "/api/task-executions/claim"): {"worker_id": "x", "executors": ["noop"]},
        ("post", "/api/task-outputs"): {
            "flow_execution_id": target.flow_execution_id,
            "task_name": "a",
            "summary": "hacked",
        },
    }
    return bodies.get((method, path), {})


# Operations without an id in the path that still name another object in the body.
BODY_TARGETED = {
    ("post", "/api/flow-executions"),
    ("post", "/api/task-executions"),
    ("put", "/api/task-executions"),
    ("post", "/api/task-outputs"),
}


def snapshot(organization: Any) -> dict[str, Any]:
    """What another organization's requests must never change."""
    executions = FlowExecution.objects.filter(organization=organization)
    return {
        "flows": sorted(
            (str(f.id), f.description, f.version, f.deleted, f.updated_at.isoformat())
            for f in organization.flows.all()
        ),
        "executions": sorted((str(e.id), e.status, e.updated_at.isoformat()) for e in executions),
        "tasks": sorted(
            (str(t.id), t.status, repr(t.output), t.lease_owner, t.updated_at.isoformat())
            for t in TaskExecution.objects.filter(organization=organization)
        ),
        "outputs": sorted(
            (str(o.id), o.status, repr(o.summary), o.updated_at.isoformat())
            for o in TaskOutput.objects.filter(organization=organization)
        ),
        "statuses": TaskStatus.objects.filter(organization=organization).count(),
    }
