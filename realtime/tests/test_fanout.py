"""The process-local fan-out: one layer subscription per group, however many subscribers;
each event frame built once per process; a slow client is cut off alone and its frames keep
their order; a dead layer refuses subscriptions cleanly."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from flowplatform.renderers import dumps
from realtime import consumers
from realtime import fanout as fanout_module
from realtime.consumers import CLOSE_LAYER_UNAVAILABLE, CLOSE_TOO_SLOW, shared_stream
from realtime.fanout import Delivery, Fanout, get_fanout
from realtime.groups import flow_group
from realtime.publisher import event_message
from realtime.selectors import Stream
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


def _stall(consumer, gate: asyncio.Event) -> None:  # noqa: ANN001
    """Make ``consumer``'s socket take no frame until ``gate`` is set, like a client that
    stopped reading once the server's write buffer is full (the ASGI send waits)."""
    real = consumer.base_send

    async def stalled(message: dict) -> None:
        if message["type"] == "websocket.send":
            await gate.wait()
        await real(message)

    consumer.base_send = stalled


async def _subscribe_and_get_consumer(tenant, flow):  # noqa: ANN001, ANN202
    before = set(get_fanout().feeds.get(flow_group(flow.id), _NoFeed).subscribers)
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    [consumer] = set(get_fanout().feeds[flow_group(flow.id)].subscribers) - before
    return comm, consumer


class _NoFeed:
    subscribers: tuple = ()


async def test_a_stalled_client_is_closed_1013_without_delaying_others(
    tenant, flow, execution, monkeypatch
):
    """Frames a client does not take wait in its outbox; past the bound it is closed so it
    reconnects and replays, instead of the server buffering without limit. Its neighbours
    get every frame meanwhile."""
    stalled, stalled_consumer = await _subscribe_and_get_consumer(tenant, flow)
    healthy, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    gate = asyncio.Event()
    _stall(stalled_consumer, gate)
    monkeypatch.setattr(consumers, "MAX_OUTBOX_FRAMES", 3)

    rows = await apublish([spec(execution, "task_status.added") for _ in range(5)])  # one batch
    assert [f["id"] for f in await receive_events(healthy, 5)] == [r.id for r in rows]
    await expect_close(stalled, CLOSE_TOO_SLOW)  # no event frame got through before it
    assert not stalled_consumer._outbox  # what it held is released

    monkeypatch.setattr(consumers, "MAX_OUTBOX_FRAMES", 10_000)
    again, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await again.send_json_to({"action": "replay", "since": 0})
    assert len(await receive_events(again, 5)) == 5  # everything is still in the outbox
    for comm in (again, healthy, stalled):
        await comm.disconnect()


async def test_frames_that_wait_for_the_socket_keep_their_order(tenant, flow, execution):
    """While a send waits for the socket, later frames queue behind it: the client gets
    every event once, in order, when it reads again; the writer ends once drained."""
    comm, consumer = await _subscribe_and_get_consumer(tenant, flow)
    gate = asyncio.Event()
    _stall(consumer, gate)

    first = await apublish([spec(execution, "task_status.added") for _ in range(2)])
    second = await apublish([spec(execution, "task_output.created")])
    await comm.send_json_to({"action": "ping"})
    assert await comm.receive_nothing(timeout=0.3)
    assert consumer._writer is not None and len(consumer._outbox) == 3

    gate.set()
    frames = [await comm.receive_json_from(timeout=5) for _ in range(4)]
    assert [f.get("id", f["type"]) for f in frames] == [r.id for r in first + second] + ["pong"]
    assert await comm.receive_nothing()
    assert consumer._writer is None and not consumer._outbox
    await comm.disconnect()


async def test_an_event_frame_is_built_once_per_process(tenant, flow, execution):
    """Every local subscriber is handed the same ASGI send message, whose text is the
    event's JSON as the API describes it."""
    a, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    b, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    [row] = await apublish([spec(execution, "task_output.created")])
    frame_a, frame_b = await a.receive_output(timeout=5), await b.receive_output(timeout=5)
    assert frame_a is frame_b
    assert frame_a == {"type": "websocket.send", "text": dumps(event_message(row)).decode()}
    await a.disconnect()
    await b.disconnect()


async def test_a_delivery_decides_once_per_stream_which_events_it_accepts():
    calls: list[int] = []

    class Only:
        def __init__(self, flow_id: str) -> None:
            self.flow_id = flow_id

        def __hash__(self) -> int:
            return hash(self.flow_id)

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Only) and other.flow_id == self.flow_id

        def accepts(self, event: dict) -> bool:
            calls.append(event["id"])
            return event["flow_id"] == self.flow_id

    events = [{"id": 1, "flow_id": "a"}, {"id": 2, "flow_id": "b"}, {"id": 3, "flow_id": "a"}]
    delivery = Delivery({"type": "events.batch", "events": events})
    first = delivery.events_for(Only("a"))
    assert [event_id for event_id, _ in first] == [1, 3]
    assert first[0][1] == {"type": "websocket.send", "text": dumps(events[0]).decode()}
    for _ in range(3):
        assert delivery.events_for(Only("a")) is first
    assert [event_id for event_id, _ in delivery.events_for(Only("b"))] == [2]
    assert calls == [1, 2, 3, 1, 2, 3]  # once per event per distinct stream
    assert Delivery({"type": "events.resync", "since": 4}).events_for(Only("a")) == []


async def test_consumers_of_one_stream_share_one_stream_object(tenant, flow):
    a, consumer_a = await _subscribe_and_get_consumer(tenant, flow)
    b, consumer_b = await _subscribe_and_get_consumer(tenant, flow)
    assert consumer_a.stream is consumer_b.stream
    assert shared_stream(Stream(tenant.organization.id, flow.id)) is consumer_a.stream
    await a.disconnect()
    await b.disconnect()


async def test_a_feed_lets_the_event_loop_run_between_slices_of_subscribers(monkeypatch):
    monkeypatch.setattr(fanout_module, "DISPATCH_SLICE", 2)
    layer = get_channel_layer()
    feed = Fanout(layer)
    order: list[str] = []
    got_all = asyncio.Event()

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_group_message(self, delivery: Delivery) -> None:
            if not order:  # something else becomes ready while the feed dispatches
                asyncio.get_running_loop().call_soon(order.append, "other work")
            order.append(self.name)
            if order.count("other work") and len(order) == 6:
                got_all.set()

    recorders = [Recorder(f"s{i}") for i in range(5)]
    for recorder in recorders:
        await feed.join("fanout-test", recorder)
    await layer.group_send("fanout-test", {"type": "events.batch", "events": []})
    await asyncio.wait_for(got_all.wait(), timeout=5)
    assert order.index("other work") == 2  # after the first slice, not after all five
    assert sorted(name for name in order if name != "other work") == ["s0", "s1", "s2", "s3", "s4"]
    for recorder in recorders:
        await feed.leave("fanout-test", recorder)


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


async def test_a_send_runs_at_once_and_only_what_waits_is_left_to_a_task():
    from realtime.sending import start_now as _start_now

    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    assert _start_now(quick()) is None and done == ["quick"]  # no task, nothing scheduled

    gate = asyncio.Event()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            done.append("started")
            await gate.wait()
            done.append("finished")
        finally:
            cleaned.append("finally")

    rest = _start_now(waits())
    assert rest is not None and done[-1] == "started"
    task = asyncio.get_running_loop().create_task(_awaiting(rest))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(task, timeout=5)
    assert done[-1] == "finished" and cleaned == ["finally"]

    gate.clear()
    task = asyncio.get_running_loop().create_task(_awaiting(_start_now(waits())))
    await asyncio.sleep(0)
    task.cancel()  # a disconnect cancels the writer: the send itself is cancelled
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally", "finally"] and done[-1] == "started"


async def _awaiting(awaitable) -> None:  # noqa: ANN001
    await awaitable
