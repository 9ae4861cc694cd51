"""The process-local fan-out: one layer subscription per group, however many subscribers;
a slow client is cut off alone; a dead layer refuses subscriptions cleanly."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer

from realtime import consumers
from realtime.consumers import CLOSE_LAYER_UNAVAILABLE, CLOSE_TOO_SLOW
from realtime.groups import flow_group
from realtime.tests.factories import apublish, spec
from realtime.tests.ws import communicator, expect_close, flow_path, receive_events, subscribe

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


async def test_subscribers_of_a_group_share_one_layer_channel(tenant, flow, execution):
    comms = [(await subscribe(flow_path(flow.id, tenant.user_key)))[0] for _ in range(5)]
    layer = get_channel_layer()
    assert len(layer.groups[flow_group(flow.id)]) == 1

    rows = await apublish([spec(execution, "task_execution.created") for _ in range(3)])
    for comm in comms:
        assert [f["id"] for f in await receive_events(comm, 3)] == [r.id for r in rows]

    for comm in comms[:-1]:
        await comm.disconnect()
    assert len(layer.groups[flow_group(flow.id)]) == 1  # still one subscriber here
    await comms[-1].disconnect()
    assert flow_group(flow.id) not in layer.groups


async def test_a_client_whose_outbox_overflows_is_closed_1013(tenant, flow, execution, monkeypatch):
    """Frames a client does not take pile up in its outbox; past the bound it is closed so it
    reconnects and replays, instead of the server buffering without limit."""
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    monkeypatch.setattr(consumers, "MAX_OUTBOX_FRAMES", 3)
    await apublish([spec(execution, "task_status.added") for _ in range(5)])  # one batch
    outputs = []
    while not outputs or outputs[-1]["type"] != "websocket.close":
        outputs.append(await comm.receive_output(timeout=5))
    assert outputs[-1]["code"] == CLOSE_TOO_SLOW
    assert len(outputs) - 1 < 5  # it did not get the whole batch

    monkeypatch.setattr(consumers, "MAX_OUTBOX_FRAMES", 10_000)
    again, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await again.send_json_to({"action": "replay", "since": 0})
    assert len(await receive_events(again, 5)) == 5  # everything is still in the outbox
    await again.disconnect()


async def test_unreachable_layer_at_subscription_closes_1011(tenant, flow, monkeypatch, caplog):
    layer = get_channel_layer()

    async def down(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConnectionRefusedError("layer down")

    monkeypatch.setattr(layer, "group_add", down)
    comm = communicator(flow_path(flow.id, tenant.user_key))
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await expect_close(comm, CLOSE_LAYER_UNAVAILABLE)
    await comm.disconnect()
    monkeypatch.undo()
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))  # recovered
    await comm.disconnect()


async def test_a_burst_of_commits_is_not_dropped_by_the_in_memory_layer(tenant, flow, execution):
    """150 transactions commit while the event loop is blocked: their 150 group messages
    queue up on the feed channel at once (the in-memory layer's default cap is 100)."""
    import threading

    from django.db import connections

    from realtime.tests.factories import publish_committed

    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    ids: list[int] = []

    def burst() -> None:
        try:
            for _ in range(150):
                ids.append(publish_committed([spec(execution, "task_status.added")])[0].id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=burst)
    thread.start()
    thread.join()  # deliberately blocks the event loop: nothing is received meanwhile
    frames = await receive_events(comm, 150)
    assert [f["id"] for f in frames] == ids
    await comm.disconnect()
