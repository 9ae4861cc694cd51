"""Replay after reconnect, ping and malformed messages."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from realtime import consumers, selectors
from realtime.groups import flow_group
from realtime.publisher import event_message
from realtime.tests.factories import apublish, make_execution, make_flow, publish_committed, spec
from realtime.tests.ws import flow_path, receive_events, subscribe, summaries_path

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


async def _replayed(comm) -> dict:  # noqa: ANN001
    frame = await comm.receive_json_from(timeout=5)
    assert frame["type"] == "replayed", frame
    return frame


async def test_replay_since_an_id_then_live_without_duplicates(tenant, flow, execution):
    before = await apublish([spec(execution, "task_execution.created") for _ in range(5)])
    comm, subscribed = await subscribe(flow_path(flow.id, tenant.user_key))
    assert subscribed["last_event_id"] == before[-1].id
    assert await comm.receive_nothing()  # history is only sent when asked for

    await comm.send_json_to({"action": "replay", "since": before[1].id})
    frames = await receive_events(comm, 3)
    assert [f["id"] for f in frames] == [row.id for row in before[2:]]
    assert (await _replayed(comm))["last_event_id"] == before[-1].id

    live = await apublish([spec(execution, "task_execution.updated")])
    [frame] = await receive_events(comm, 1)
    assert frame["id"] == live[0].id

    # asking again from the start only sends what this connection has not had yet
    await comm.send_json_to({"action": "replay", "since": 0})
    frames = await receive_events(comm, 2)
    assert [f["id"] for f in frames] == [before[0].id, before[1].id]
    assert (await _replayed(comm))["last_event_id"] == live[0].id
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_replay_of_a_flow_excludes_other_flows_and_organizations(
    tenant, outsider, flow, execution
):
    sibling = await sync_to_async(make_execution)(
        await sync_to_async(make_flow)(tenant.organization, name="sibling")
    )
    foreign = await sync_to_async(make_execution)(
        await sync_to_async(make_flow)(outsider.organization, name="foreign")
    )
    mine = []
    for source in (execution, sibling, foreign, execution):
        rows = await apublish([spec(source, "task_output.created")])
        if source is execution:
            mine.extend(rows)
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await comm.send_json_to({"action": "replay", "since": 0})
    frames = await receive_events(comm, 2)
    assert [f["id"] for f in frames] == [row.id for row in mine]
    await _replayed(comm)
    await comm.disconnect()


async def test_summary_replay_is_the_organizations_task_outputs(tenant, outsider, execution):
    foreign = await sync_to_async(make_execution)(
        await sync_to_async(make_flow)(outsider.organization, name="foreign")
    )
    rows = await apublish(
        [
            spec(execution, "task_output.created"),
            spec(execution, "task_execution.updated"),
            spec(foreign, "task_output.created"),
            spec(execution, "task_output.updated"),
        ]
    )
    comm, subscribed = await subscribe(summaries_path(tenant.service_key))
    assert subscribed["last_event_id"] == rows[3].id
    await comm.send_json_to({"action": "replay", "since": 0})
    frames = await receive_events(comm, 2)
    assert [(f["id"], f["event_type"]) for f in frames] == [
        (rows[0].id, "task_output.created"),
        (rows[3].id, "task_output.updated"),
    ]
    await _replayed(comm)
    await comm.disconnect()


async def test_replay_pages_and_live_events_during_replay(tenant, flow, execution, monkeypatch):
    """Events are read in bounded pages; live events arriving mid-replay (new ones, and
    ones the replay also reads) come after the replayed ones, each exactly once, in order."""
    monkeypatch.setattr(consumers, "REPLAY_PAGE_SIZE", 3)
    history = await apublish([spec(execution, "task_execution.created") for _ in range(8)])
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))

    pages: list[tuple[int, int]] = []
    live: list = []
    real_page = selectors.events_page

    def page_with_traffic(*, stream, after, upto, limit):  # noqa: ANN001, ANN202
        result = real_page(stream=stream, after=after, upto=upto, limit=limit)
        pages.append((after, limit))
        if len(pages) == 1:
            # a newer event commits and is pushed while the replay is running ...
            live.extend(publish_committed([spec(execution, "task_execution.updated")]))
            # ... and a late live copy of events the replay is reading anyway
            late = {"type": "events.batch", "events": [event_message(r) for r in history[4:6]]}
            async_to_sync(get_channel_layer().group_send)(flow_group(flow.id), late)
        return result

    monkeypatch.setattr(selectors, "events_page", page_with_traffic)
    await comm.send_json_to({"action": "replay", "since": history[0].id})

    frames = await receive_events(comm, 8)
    expected = [row.id for row in history[1:]] + [live[0].id]
    assert [f["id"] for f in frames] == expected
    assert (await _replayed(comm))["last_event_id"] == live[0].id
    assert pages == [(history[0].id, 3), (history[3].id, 3), (history[6].id, 3)]
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_replay_with_nothing_missed(tenant, flow, execution):
    rows = await apublish([spec(execution, "task_execution.created")])
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await comm.send_json_to({"action": "replay", "since": rows[0].id})
    assert (await _replayed(comm))["last_event_id"] == rows[0].id
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_ping(tenant, flow):
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await comm.send_json_to({"action": "ping"})
    assert await comm.receive_json_from() == {"type": "pong"}
    await comm.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"text_data": "not json"},
        {"text_data": "[1, 2]"},
        {"text_data": '{"action": "subscribe"}'},
        {"text_data": "{}"},
        {"text_data": '{"action": "replay"}'},
        {"text_data": '{"action": "replay", "since": "12"}'},
        {"text_data": '{"action": "replay", "since": -1}'},
        {"text_data": '{"action": "replay", "since": 1.5}'},
        {"text_data": '{"action": "replay", "since": true}'},
        {"text_data": '{"action": "ping", "pad": "' + "x" * 5000 + '"}'},
        {"bytes_data": b'{"action": "ping"}'},
    ],
)
async def test_malformed_messages_get_an_error_and_the_connection_stays(frame, tenant, flow):
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await comm.send_to(**frame)
    reply = await comm.receive_json_from()
    assert reply["type"] == "error" and reply["message"]
    await comm.send_json_to({"action": "ping"})
    assert await comm.receive_json_from() == {"type": "pong"}
    await comm.disconnect()


async def test_resync_from_the_publisher_sends_missed_events(tenant, flow, execution, monkeypatch):
    """When the layer could not deliver batches, the publisher later asks the group to resync:
    subscribers read what they missed from the outbox (and only what they subscribed to)."""
    old = await apublish([spec(execution, "task_execution.created")])
    comm, subscribed = await subscribe(flow_path(flow.id, tenant.user_key))
    assert subscribed["last_event_id"] == old[0].id

    from realtime import publisher

    monkeypatch.setattr(publisher, "deliver", lambda layer, batches: None)  # layer "down"
    missed = await apublish([spec(execution, "task_execution.updated") for _ in range(3)])
    assert await comm.receive_nothing()
    monkeypatch.undo()

    layer = get_channel_layer()
    await layer.group_send(flow_group(flow.id), {"type": "events.resync", "since": 0})
    frames = await receive_events(comm, 3)
    assert [f["id"] for f in frames] == [row.id for row in missed]  # not the older one
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_a_resync_during_a_replay_runs_after_it(tenant, flow, execution, monkeypatch):
    """Batches the layer could not deliver while this client was replaying are read from the
    outbox once the replay ends (their ids are past what the running replay reads)."""
    from realtime import publisher

    history = await apublish([spec(execution, "task_execution.created") for _ in range(2)])
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    missed: list = []
    real_page = selectors.events_page

    def page_during_outage(*, stream, after, upto, limit):  # noqa: ANN001, ANN202
        result = real_page(stream=stream, after=after, upto=upto, limit=limit)
        if not missed:
            monkeypatch.setattr(publisher, "deliver", lambda layer, batches: None)  # "down"
            missed.extend(publish_committed([spec(execution, "task_output.created")]))
            monkeypatch.undo()
            resync = {"type": "events.resync", "since": missed[0].id - 1}
            async_to_sync(get_channel_layer().group_send)(flow_group(flow.id), resync)
        return result

    monkeypatch.setattr(selectors, "events_page", page_during_outage)
    await comm.send_json_to({"action": "replay", "since": 0})
    frames = await receive_events(comm, 2)
    assert [f["id"] for f in frames] == [r.id for r in history]
    assert (await _replayed(comm))["type"] == "replayed"
    [late] = await receive_events(comm, 1)
    assert late["id"] == missed[0].id
    assert await comm.receive_nothing()
    await comm.disconnect()
