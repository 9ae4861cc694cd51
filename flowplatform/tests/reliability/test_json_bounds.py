"""Bounded JSON on every path a client sends JSON or YAML (``flowplatform.parsers``).

Found by an adversarial run: JSON nested 254+ levels was committed, then answered 500 (the
renderer stops at 254), and poisoned every later read of the organization's list and the
flow's WebSocket replay; at ~1,000 levels the parser itself raised (500). A YAML integer of
more than 4,300 digits was a 500 too. Now every such body is a 4xx and nothing is written;
a stored value the renderer cannot write (kept from before, or put there by hand) is shown
as a placeholder and never breaks a list, a detail or a replay.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from executions.models import Flow, FlowExecution, TaskExecution, TaskStatus
from executions.tests.engine.factories import make_flow, shape_definition, start
from flowplatform.renderers import UNRENDERABLE
from flowplatform.tests.reliability.figures import figure
from outputs.models import TaskOutput
from realtime.models import Event
from realtime.tests.conftest import _fresh_channel_layers, close_thread_connections  # noqa: F401
from realtime.tests.factories import apublish, make_execution, spec
from realtime.tests.factories import make_flow as make_realtime_flow
from realtime.tests.ws import flow_path, receive_events, subscribe

DEPTHS = (100, 101, 254, 255, 1_000, 10_000, 100_000)


def nested(depth: int) -> str:
    """JSON text of a value nested ``depth`` levels (``[[...[1]...]]``)."""
    return "[" * depth + "1" + "]" * depth


def body_text(fields: dict[str, Any], deep_field: str, depth: int) -> str:
    """``fields`` as JSON with ``deep_field`` replaced by a value nested ``depth`` levels
    (spliced as text: the standard library cannot write what it cannot read back)."""
    marker = "__DEEP__"
    return json.dumps({**fields, deep_field: marker}).replace(f'"{marker}"', nested(depth))


def snapshot() -> tuple:
    """Everything a write could have changed."""
    return tuple(
        sorted(map(str, model.objects.values_list("id", "updated_at")))
        if hasattr(model, "updated_at")
        else sorted(map(str, model.objects.values_list("id", flat=True)))
        for model in (Flow, FlowExecution, TaskExecution, TaskOutput, TaskStatus, Event)
    )


@pytest.fixture
def world(tenant):
    flow = make_flow(tenant.organization, shape_definition({"a": [], "b": ["a"]}))
    execution = start(tenant.organization, None, flow=flow)
    task = TaskExecution.objects.get(flow_execution=execution, task_name="a")
    return flow, execution, task


def probes(flow, execution, task) -> list[tuple[str, str, str, dict[str, Any], str]]:
    """``(key kind, method, path, other fields, deep field)`` for every JSON field of every
    write endpoint; ``""`` as the field nests the whole body."""
    fe, te = str(execution.id), str(task.id)
    report = {"flow_execution_id": fe, "task_name": "a", "task_execution_idx": 0}
    definition = {"tasks": [{"name": "a", "task_executor_name": "noop"}]}
    found = []
    for field in ("input", "output", "error"):
        found.append(
            ("service", "post", "/api/task-executions", {**report, "status": "completed"}, field)
        )
        found.append(("user", "put", "/api/task-executions", {"id": te}, field))
    for field in ("summary", "output", "tags"):
        found.append(
            (
                "service",
                "post",
                "/api/task-outputs",
                {"flow_execution_id": fe, "task_name": "a", "summary": 1},
                field,
            )
        )
    found += [
        ("user", "post", "/api/flow-executions", {"flow_id": str(flow.id)}, "input"),
        ("user", "post", "/api/flows", {"display_name": "f", "definition": definition}, "tags"),
        ("user", "post", "/api/flows", {"display_name": "f"}, "definition"),
        ("user", "patch", f"/api/flows/{flow.id}", {}, "tags"),
        ("user", "put", f"/api/flows/{flow.id}/definition", {}, "definition"),
        ("user", "post", f"/api/flows/{flow.id}/validate", {}, "definition"),
        ("service", "post", f"/api/flow-executions/{fe}/task-status", {}, "statuses"),
        ("service", "post", "/api/task-executions/claim", {"worker_id": "w"}, "executors"),
        ("service", "post", f"/api/task-executions/{te}/heartbeat", {}, "worker_id"),
        ("service", "post", "/api/task-executions", {}, ""),
        ("user", "post", "/api/flow-executions", {}, ""),
    ]  # fmt: skip
    return found


@pytest.mark.django_db
def test_every_json_field_of_every_write_endpoint_refuses_deep_nesting(tenant, world):
    flow, execution, task = world
    refused = 0
    for depth in DEPTHS:
        for kind, method, path, fields, field in probes(flow, execution, task):
            before = snapshot()
            text = nested(depth) if field == "" else body_text(fields, field, depth)
            response = getattr(tenant.client(kind), method)(
                path, text, content_type="application/json"
            )
            allowed = (400, 422) if depth > 100 else (200, 201, 400, 404, 409, 422)
            assert response.status_code in allowed, (depth, path, field, response.content[:300])
            assert response["Content-Type"] == "application/json"
            if depth > 100:
                assert response.json()["error"]["code"] in ("validation_error", "bad_request")
                assert snapshot() == before, (depth, path, field)
                refused += 1
    # Reads are unaffected: lists and details answer.
    client = tenant.client("user")
    for path in ("/api/flow-executions", "/api/task-executions", "/api/task-outputs", "/api/flows"):
        assert client.get(path).status_code == 200, path
    assert client.get(f"/api/flow-executions/{execution.id}").status_code == 200
    figure(14, "bounded JSON", probes=refused, depths=DEPTHS, answered_5xx=0, written=0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    [
        "tasks:\n  - name: a\n    task_executor_name: noop\n    parameters: {n: "
        + "9" * 5000
        + "}\n",
        "tasks: " + "[" * 2000 + "]" * 2000 + "\n",
        "tasks:\n  - name: a\n    task_executor_name: noop\n    parameters: {n: "
        + nested(150)
        + "}\n",
    ],
    ids=["long-integer", "deep-flow-style", "deep-parameters"],
)
def test_yaml_bodies_are_bounded_too(tenant, text):
    before = snapshot()
    client = tenant.client("user")
    as_body = client.post("/api/flows?display_name=f", text, content_type="application/yaml")
    as_text = client.post("/api/flows", {"display_name": "f", "definition": text}, format="json")
    for response in (as_body, as_text):
        assert response.status_code in (400, 422), response.content[:300]
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"summary": 1e400}', ["body", "summary"]),
        ('{"summary": [18446744073709551616]}', ["body", "summary", 0]),
        ('{"summary": -9223372036854775809}', ["body", "summary"]),
    ],
)
def test_numbers_the_renderer_cannot_write_are_refused(tenant, world, raw, loc):
    _, execution, _ = world
    body = raw[:-1] + f', "flow_execution_id": "{execution.id}", "task_name": "a"}}'
    before = snapshot()
    response = tenant.client("service").post(
        "/api/task-outputs", body, content_type="application/json"
    )
    assert response.status_code == 422, response.content
    assert response.json()["error"]["details"][0]["loc"] == loc
    assert snapshot() == before


@pytest.mark.django_db
def test_a_stored_value_too_deep_to_render_is_a_placeholder_in_reads(tenant, world):
    _, execution, task = world
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    TaskExecution.objects.filter(id=task.id).update(output=deep)
    client = tenant.client("user")
    detail = client.get(f"/api/task-executions/{task.id}")
    assert detail.status_code == 200
    value = detail.json()["output"]
    for _ in range(200):
        value = value[0] if isinstance(value, list) else value
    assert UNRENDERABLE in json.dumps(detail.json())
    assert client.get("/api/task-executions").status_code == 200


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_replay_passes_over_an_event_too_deep_to_render(tenant):
    flow = await sync_to_async(make_realtime_flow)(tenant.organization)
    execution = await sync_to_async(make_execution)(flow)
    deep: Any = 1
    for _ in range(300):
        deep = {"k": deep}
    rows = await apublish(
        [
            spec(execution, "task_execution.updated"),
            spec(execution, "task_execution.updated", deep=deep),
            spec(execution, "task_execution.updated"),
        ]
    )
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await comm.send_json_to({"action": "replay", "since": 0})
    frames = await receive_events(comm, 3)
    assert [frame["id"] for frame in frames] == [row.id for row in rows]
    assert UNRENDERABLE in json.dumps(frames[1])
    done = await comm.receive_json_from(timeout=5)
    assert done["type"] == "replayed"
    await comm.disconnect()
