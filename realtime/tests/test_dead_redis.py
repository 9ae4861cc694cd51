"""With Redis dead (refusing) or hanging (accepting but never answering), API writes still
succeed at once, the outage is logged once, and every event is replayable afterwards."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from channels.layers import channel_layers
from django.test import AsyncClient

from realtime import sender as sender_module
from realtime.tests.ws import flow_path, receive_events, subscribe

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture(params=["refused", "hanging"])
def broken_redis_url(request) -> Iterator[str]:  # noqa: ANN001
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if request.param == "refused":
        listener.close()  # nothing listens there any more: connections are refused
        yield f"redis://127.0.0.1:{port}/0"
        return
    listener.listen(128)  # the kernel completes connections; nobody ever answers
    yield f"redis://127.0.0.1:{port}/0"
    listener.close()


def _use_layer(settings, config: dict) -> None:  # noqa: ANN001
    settings.CHANNEL_LAYERS = {"default": config}
    channel_layers.backends.clear()


async def test_api_writes_succeed_quickly_and_events_replay_later(
    broken_redis_url, tenant, flow, execution, settings, caplog
):
    settings.FLOWPLATFORM_REALTIME_SEND_TIMEOUT = 0.5
    _use_layer(
        settings,
        {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [broken_redis_url]},
        },
    )
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {tenant.service_key}"}
    warm_up = await client.get("/api/task-outputs", {"limit": 1}, headers=auth)  # imports, caches
    assert warm_up.status_code == 200
    responses, durations = [], []
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        for task_name, rows in [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2)]:
            body = {"flow_execution_id": str(execution.id), "task_name": task_name}
            started = time.monotonic()
            response = await client.post(
                "/api/task-outputs",
                {**body, "summary": {"rows": rows}},
                content_type="application/json",
                headers=auth,
            )
            durations.append(time.monotonic() - started)
            assert response.status_code in (200, 201), response.content
            responses.append(response.json())
        assert sender_module.get_sender().flush(10)
    # Generous bound: publishing inline would wait for Redis (forever, when it hangs).
    assert max(durations) < 1.0, durations
    outage_reports = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_reports) == 1, [r.getMessage() for r in caplog.records]
    assert tenant.service_key not in caplog.text

    # Redis is back (here: the in-memory layer): a reconnecting client replays everything.
    _use_layer(settings, {"BACKEND": "channels.layers.InMemoryChannelLayer"})
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    await comm.send_json_to({"action": "replay", "since": 0})
    frames = await receive_events(comm, len(responses))
    assert [f["data"] for f in frames] == responses
    assert [f["event_type"] for f in frames] == [
        "task_output.created",
        "task_output.created",
        "task_output.updated",
        "task_output.created",
        "task_output.updated",
    ]
    assert (await comm.receive_json_from())["type"] == "replayed"
    await comm.disconnect()
