"""Row 11 — event backpressure, end to end: a WebSocket client that stops reading while more
than 1,000 events are published for its flow loses none of them once it resumes and replays.

The server either keeps the frames for it (up to 10,000 per connection) or, past that, closes
it with 1013 ("too slow; reconnect and replay"); in both cases what the connection delivered
plus a replay from the last id it got is every event of the outbox, in order, each once.
"""

from __future__ import annotations

import time

import pytest

from executions.tests.engine.factories import start
from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.streams import outbox_ids, read, replay, subscribe
from flowplatform.tests.reliability.test_server_crash import DEFINITION

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCHES = 12  # x 100 task statuses, one event each


def test_a_client_that_stops_reading_loses_nothing(e2e_server, tenant):
    execution = start(tenant.organization, DEFINITION)
    flow_id = str(execution.flow_id)
    server = e2e_server()
    url = f"{server.url.replace('http://', 'ws://')}/ws/flows/{flow_id}?token={tenant.user_key}"
    with subscribe(url) as (ws, live):
        began = live.subscribed_at
        with server.client(tenant.service_key) as http:  # the client reads nothing meanwhile
            for batch in range(BATCHES):
                statuses = [{"task_name": "r0", "status": f"b{batch}.{i}"} for i in range(100)]
                response = http.post(
                    f"/api/flow-executions/{execution.id}/task-status",
                    json={"statuses": statuses},
                )
                assert response.status_code == 200, response.text
        time.sleep(2)  # stalled well past the burst
        read(ws, live, quiet=2.0)  # resume
    last = max(live.ids, default=began)
    replayed = replay(url, last)
    expected = outbox_ids(flow_id, began)
    delivered = live.ids + replayed.ids
    lost = sorted(set(expected) - set(delivered))
    figure(
        11,
        "a stalled WebSocket client, then replay",
        events_published=len(expected),
        received_live=len(live.ids),
        live_close_code=live.close_code,
        received_by_replay=len(replayed.ids),
        lost=len(lost),
        duplicates=live.duplicates + replayed.duplicates,
    )
    assert len(expected) >= BATCHES * 100
    assert lost == []
    assert live.duplicates == replayed.duplicates == 0
    assert live.ids == sorted(live.ids) and replayed.ids == sorted(replayed.ids)
    assert set(delivered) <= set(expected)
