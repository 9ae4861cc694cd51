"""Row 10 — Redis fails during a burst, end to end: two uvicorn servers share a private
``redis-server`` (started here on a free port, never the shared 6379) as their channel layer;
server A takes a burst of writes while a WebSocket client of server B watches the flow. Redis
is killed mid-burst and started again.

- every API write succeeds, quickly, while Redis is down (events stay in the outbox);
- the client, reconnecting to B with ``since`` = the last event id it got, receives every event
  of the outbox: 0 gaps, 0 duplicates (figure).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter

import httpx
import pytest

from executions.tests.e2e.conftest import free_port, wait_until
from executions.tests.engine.factories import start
from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.streams import outbox_ids, read, replay, subscribe
from flowplatform.tests.reliability.test_server_crash import DEFINITION

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class PrivateRedis:
    def __init__(self, tmp_path) -> None:  # noqa: ANN001
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ping, timeout=10, what="redis-server")

    def _ping(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def redis(tmp_path):  # noqa: ANN001, ANN201
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def test_writes_succeed_and_reconnecting_clients_miss_nothing(e2e_server, tenant, redis):
    execution = start(tenant.organization, DEFINITION)
    flow_id = str(execution.flow_id)
    writer = e2e_server(REDIS_URL=redis.url)
    watcher = e2e_server(REDIS_URL=redis.url)
    url = f"{watcher.url.replace('http://', 'ws://')}/ws/flows/{flow_id}?token={tenant.user_key}"
    outcomes: Counter = Counter()
    durations: list[float] = []
    stop = threading.Event()

    def burst() -> None:
        with httpx.Client(
            base_url=writer.url,
            headers={"Authorization": f"Bearer {tenant.service_key}"},
            timeout=10,
        ) as http:
            n = 0
            while not stop.is_set():
                n += 1
                statuses = [{"task_name": "r1", "status": f"s{n}.{k}"} for k in range(5)]
                began = time.monotonic()
                response = http.post(
                    f"/api/flow-executions/{execution.id}/task-status",
                    json={"statuses": statuses},
                )
                durations.append(time.monotonic() - began)
                outcomes[response.status_code] += 1
                time.sleep(0.02)

    with subscribe(url) as (ws, first):
        began_at = first.subscribed_at
        thread = threading.Thread(target=burst, daemon=True)
        thread.start()
        wait_until(lambda: outcomes[200] >= 20, timeout=30, what="the burst")
        read(ws, first, quiet=0.3, at_most=1.0)
        redis.kill()  # mid-burst
        during = outcomes[200]
        wait_until(lambda: outcomes[200] >= during + 30, timeout=30, what="writes without Redis")
        read(ws, first, quiet=1.0, at_most=3.0)  # whatever still arrives, or the close
    written_while_down = outcomes[200] - during
    redis.start()  # back, on the same port
    after = outcomes[200]
    wait_until(lambda: outcomes[200] >= after + 30, timeout=30, what="writes after Redis")
    stop.set()
    thread.join(10)
    time.sleep(1)
    # Reconnect as a client would: from the last event it saw.
    since = first.ids[-1] if first.ids else began_at
    second = replay(url, since)
    expected = outbox_ids(flow_id, began_at)
    delivered = first.ids + second.ids
    gaps = sorted(set(expected) - set(delivered))
    duplicates = len(delivered) - len(set(delivered))
    figure(
        10,
        "Redis killed during a burst, clients reconnect with since",
        writes=dict(outcomes),
        writes_acknowledged_while_redis_down=written_while_down,
        slowest_write_ms=round(max(durations) * 1000),
        events=len(expected),
        first_connection=len(first.ids),
        first_connection_close=first.close_code,
        after_reconnect=len(second.ids),
        gaps=len(gaps),
        duplicates=duplicates,
    )
    assert set(outcomes) == {200}, outcomes
    assert max(durations) < 5.0, max(durations)  # never waits on the dead Redis
    assert gaps == []
    assert duplicates == 0
    assert first.ids == sorted(first.ids) and second.ids == sorted(second.ids)
