"""The real channels-redis pub/sub layer in one process: the publisher's background sender
thread publishes to Redis, the consumer on the test's event loop receives from it."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from channels.layers import channel_layers

from realtime.sender import get_sender
from realtime.tests.factories import ALL_EVENT_TYPES, apublish, spec
from realtime.tests.ws import flow_path, receive_events, subscribe, summaries_path

pytestmark = [
    pytest.mark.redis,
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
def redis_layer(settings) -> None:  # noqa: ANN001
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # a prefix of its own, so parallel runs never hear each other
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": f"t{uuid.uuid4().hex[:8]}"},
        }
    }
    channel_layers.backends.clear()


async def test_events_travel_through_redis(redis_layer, tenant, flow, execution):
    flow_comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    summary_comm, _ = await subscribe(summaries_path(tenant.service_key))

    rows = await apublish([spec(execution, t) for t in ALL_EVENT_TYPES])
    frames = await receive_events(flow_comm, len(rows))
    assert [f["id"] for f in frames] == [row.id for row in rows]
    summaries = await receive_events(summary_comm, 2)
    assert [f["event_type"] for f in summaries] == ["task_output.created", "task_output.updated"]
    assert "realtime-sender" in {t.name for t in threading.enumerate()}
    assert get_sender().flush(5)

    await flow_comm.send_json_to({"action": "replay", "since": rows[5].id})
    assert (await flow_comm.receive_json_from(timeout=5))["type"] == "replayed"  # no duplicates
    assert await flow_comm.receive_nothing(timeout=0.3)
    await flow_comm.disconnect()
    await summary_comm.disconnect()


async def test_an_event_too_wide_for_msgpack_still_reaches_subscribers(
    redis_layer, tenant, flow, execution
):
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    wide = 2**70  # valid JSON, kept exactly by the outbox; msgpack stops at 64 bits
    rows = await apublish([spec(execution, "task_output.created", big=wide)])
    [frame] = await receive_events(comm, 1)  # through a resync, from the outbox
    assert frame["id"] == rows[0].id
    assert frame["data"]["big"] == wide
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()
