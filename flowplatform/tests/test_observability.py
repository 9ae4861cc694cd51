"""Engine status changes as log lines and counters, and /metrics moving with traffic (one
process, in-memory layer). Several processes summed: test_production_e2e.py."""

from __future__ import annotations

import logging
from datetime import timedelta

import orjson
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections, transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from executions.engine import leases
from executions.models import TaskExecution
from executions.tests.engine.factories import shape_definition, start
from flowplatform.logging import JsonFormatter
from realtime.tests.factories import make_flow
from realtime.tests.ws import flow_path, subscribe

TRANSITIONS_LOGGER = "executions.engine.transitions"
TASK_FIELDS = {"task_execution_id", "flow_execution_id", "task_name", "idx", "from", "to"}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def transitions_to(status: str) -> float:
    return sample("flowplatform_task_transitions_total", status=status)


def task_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    formatter = JsonFormatter()
    return [
        orjson.loads(formatter.format(record))
        for record in caplog.records
        if record.name == TRANSITIONS_LOGGER and hasattr(record, "task_execution_id")
    ]


def claim(tenant, worker_id: str = "w1") -> list[dict]:  # noqa: ANN001
    return leases.claim_task_executions(
        organization=tenant.organization, worker_id=worker_id, executors=["noop"], limit=10
    )


@pytest.mark.django_db
def test_each_task_change_is_one_json_line_and_one_count_after_commit(
    tenant,  # noqa: ANN001
    service_client,  # noqa: ANN001
    caplog,  # noqa: ANN001
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.INFO, logger=TRANSITIONS_LOGGER)
    with django_capture_on_commit_callbacks(execute=True):
        execution = start(tenant.organization, shape_definition({"a": [], "b": ["a"]}))
    created = task_lines(caplog)
    assert [(line["task_name"], line["from"], line["to"]) for line in created] == [
        ("a", None, "queued")
    ]
    flow_moves = [
        (r.flow_execution_id, getattr(r, "from"), r.to)
        for r in caplog.records
        if r.name == TRANSITIONS_LOGGER and not hasattr(r, "task_execution_id")
    ]
    assert flow_moves == [(str(execution.id), "queued", "running")]
    caplog.clear()
    claims, running = sample("flowplatform_task_claims_total"), transitions_to("running")

    with django_capture_on_commit_callbacks(execute=True):
        (task,) = claim(tenant)
        assert task_lines(caplog) == []  # nothing before the commit

    assert sample("flowplatform_task_claims_total") == claims + 1
    assert transitions_to("running") == running + 1
    (line,) = task_lines(caplog)
    assert TASK_FIELDS <= set(line)
    assert line == {
        **line,
        "task_execution_id": task["id"],
        "flow_execution_id": str(execution.id),
        "task_name": "a",
        "idx": 0,
        "from": "queued",
        "to": "running",
        "organization_id": str(tenant.organization.id),
        "worker_id": "w1",
        "logger": TRANSITIONS_LOGGER,
        "level": "INFO",
    }
    caplog.clear()
    completed = transitions_to("completed")

    with django_capture_on_commit_callbacks(execute=True):
        response = service_client.post(
            "/api/task-executions",
            {
                "flow_execution_id": str(execution.id),
                "task_name": "a",
                "task_execution_idx": 0,
                "status": "completed",
                "output": {"ok": True},
                "worker_id": "w1",
            },
            format="json",
        )
    assert response.status_code in (200, 201), response.content
    assert transitions_to("completed") == completed + 1
    moves = [(line["task_name"], line["from"], line["to"]) for line in task_lines(caplog)]
    assert moves == [("a", "running", "completed"), ("b", None, "queued")]
    assert tenant.service_key not in caplog.text


@pytest.mark.django_db
def test_a_change_that_rolls_back_leaves_no_trace(
    tenant,  # noqa: ANN001
    caplog,  # noqa: ANN001
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.INFO, logger=TRANSITIONS_LOGGER)
    with django_capture_on_commit_callbacks(execute=True):
        start(tenant.organization, shape_definition({"a": []}))
    caplog.clear()
    claims = sample("flowplatform_task_claims_total")
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                assert len(claim(tenant)) == 1
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert sample("flowplatform_task_claims_total") == claims
    assert task_lines(caplog) == []


@pytest.mark.django_db
def test_lease_expiry_and_retry_are_counted(
    tenant,  # noqa: ANN001
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    definition = shape_definition({"a": []}, a={"retries": {"max_attempts": 2}})
    with django_capture_on_commit_callbacks(execute=True):
        execution = start(tenant.organization, definition)
        claim(tenant)
    expiries = sample("flowplatform_lease_expiries_total")
    retries = sample("flowplatform_task_retries_total")
    failed = transitions_to("failed")
    TaskExecution.objects.filter(flow_execution=execution).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert leases.sweep_expired_leases(organization=tenant.organization) == 1
    assert sample("flowplatform_lease_expiries_total") == expiries + 1
    assert sample("flowplatform_task_retries_total") == retries + 1
    assert transitions_to("failed") == failed + 1


def _metrics(client) -> dict[tuple[str, str], float]:  # noqa: ANN001
    """``{(name, labels): value}`` of a /metrics answer."""
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    values = {}
    for line in response.content.decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name, _, labels = key.partition("{")
            values[(name, labels.rstrip("}"))] = float(value)
    return values


def _moved(before: dict, after: dict, name: str, labels: str = "") -> float:
    return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)


async def _watch_once(path: str) -> None:
    try:
        comm, _ = await subscribe(path)
        await comm.disconnect()
    finally:
        await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
def test_metrics_move_after_traffic(tenant, user_client, service_client, anon_client) -> None:  # noqa: ANN001
    flow = make_flow(tenant.organization)  # three independent noop tasks
    before = _metrics(anon_client)

    async_to_sync(_watch_once)(flow_path(flow.id, tenant.user_key))
    response = user_client.post("/api/flow-executions", {"flow_id": str(flow.id)}, format="json")
    assert response.status_code == 201, response.content
    claim_body = {"worker_id": "w1", "executors": ["noop"], "limit": 10, "wait_seconds": 0}
    claimed = service_client.post("/api/task-executions/claim", claim_body, format="json")
    assert len(claimed.json()["task_executions"]) == 3

    after = _metrics(anon_client)
    assert _moved(before, after, "flowplatform_task_claims_total") == 3
    running = 'status="running"'
    assert _moved(before, after, "flowplatform_task_transitions_total", running) == 3
    assert _moved(before, after, "flowplatform_events_published_total") >= 3 + 3 + 2
    accepted = 'outcome="accepted"'
    assert _moved(before, after, "flowplatform_websocket_connections_total", accepted) == 1
    assert _moved(before, after, "flowplatform_websocket_disconnections_total") == 1
    assert after[("flowplatform_running_tasks", "")] == 3
    assert after[("flowplatform_flow_executions", 'status="running"')] == 1
