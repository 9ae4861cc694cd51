"""Real API calls, served by the ASGI handler like in production, reach subscribers."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from django.test import AsyncClient

from realtime.groups import flow_group, summaries_group
from realtime.tests.ws import flow_path, receive_events, subscribe, summaries_path

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


class _Client:
    """Django's AsyncClient (requests go through the ASGI handler) with an API key."""

    def __init__(self, key: str) -> None:
        self.client = AsyncClient()
        self.headers = {"Authorization": f"Bearer {key}"}

    async def post(self, path: str, body: dict):  # noqa: ANN201
        return await self.client.post(
            path, body, content_type="application/json", headers=self.headers
        )


def _client(key: str) -> _Client:
    return _Client(key)


async def test_post_task_output_reaches_flow_and_summary_subscribers(
    tenant, outsider, flow, execution
):
    flow_comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    summary_comm, _ = await subscribe(summaries_path(tenant.user_key))
    outsider_comm, _ = await subscribe(summaries_path(outsider.user_key))
    client = _client(tenant.service_key)
    body = {"flow_execution_id": str(execution.id), "task_name": "a", "summary": {"rows": 3}}

    created = await client.post("/api/task-outputs", body)
    assert created.status_code == 201, created.content
    [on_flow] = await receive_events(flow_comm, 1)
    [on_summaries] = await receive_events(summary_comm, 1)
    assert on_flow == on_summaries
    assert on_flow["event_type"] == "task_output.created"
    assert on_flow["data"] == created.json()  # the resource as the API returns it
    assert on_flow["flow_execution_id"] == str(execution.id)

    body["summary"] = {"rows": 4}
    updated = await client.post("/api/task-outputs", body)
    assert updated.status_code == 200, updated.content
    [on_flow] = await receive_events(flow_comm, 1)
    assert on_flow["event_type"] == "task_output.updated"
    assert on_flow["data"] == updated.json()
    assert (await receive_events(summary_comm, 1))[0]["id"] == on_flow["id"]

    assert await outsider_comm.receive_nothing()
    for comm in (flow_comm, summary_comm, outsider_comm):
        await comm.disconnect()


async def test_task_status_batch_is_one_notification_batch(tenant, flow, execution, monkeypatch):
    """Seed 004: a batch of statuses is one group message to the flow's subscribers."""
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    layer = get_channel_layer()
    sends: list[tuple[str, dict]] = []
    real_group_send = layer.group_send

    async def spy(group, message):  # noqa: ANN001, ANN202
        sends.append((group, message))
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", spy)
    statuses = [
        {"task_name": n, "status": s} for n, s in [("a", "started"), ("b", "50%"), ("a", None)]
    ]
    response = await _client(tenant.service_key).post(
        f"/api/flow-executions/{execution.id}/task-status",
        {"statuses": statuses},
    )
    assert response.status_code == 200, response.content

    frames = await receive_events(comm, 3)
    assert [(f["event_type"], f["task_name"], f["data"]["status"]) for f in frames] == [
        ("task_status.added", s["task_name"], s["status"]) for s in statuses
    ]
    assert [f["data"] for f in frames] == response.json()
    assert [group for group, _ in sends] == [flow_group(flow.id)]
    assert summaries_group(tenant.organization.id) not in [group for group, _ in sends]
    assert await comm.receive_nothing()
    await comm.disconnect()
