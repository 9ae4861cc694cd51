"""Two real uvicorn processes share one database and the Redis channel layer: an API call to
one reaches a WebSocket client of the other. A third, whose Redis is dead, still answers
writes at once, and those events are replayable from any process afterwards."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection
from websockets.sync.client import connect

from realtime.tests.live import (
    LiveServer,
    database_url,
    free_port,
    run_manage,
    seed_data,
    server_env,
)

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:  # noqa: ANN001
    """A migrated SQLite file, copied per test (the pytest database is in memory)."""
    path = tmp_path_factory.mktemp("e2e") / "template.sqlite3"
    run_manage(server_env(database_url=f"sqlite:///{path}", redis_url=None), "migrate", "-v", "0")
    return path


@pytest.fixture
def live_database(request, tmp_path) -> str:  # noqa: ANN001
    """The PostgreSQL test database when running on PostgreSQL (flushed after the test),
    otherwise a fresh SQLite file both servers share."""
    if connection.vendor == "postgresql":
        return database_url(connection.settings_dict)
    path = tmp_path / "live.sqlite3"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def servers(live_database, tmp_path):  # noqa: ANN001
    env = server_env(database_url=live_database, redis_url=os.environ["REDIS_URL"])
    data = seed_data(env)
    with LiveServer(env, tmp_path / "a.log") as a, LiveServer(env, tmp_path / "b.log") as b:
        yield a, b, data, env


def _recv_json(ws, timeout: float = 10) -> dict:  # noqa: ANN001
    return json.loads(ws.recv(timeout=timeout))


def _post_output(server: LiveServer, data: dict, task_name: str, summary: dict) -> httpx.Response:
    return httpx.post(
        f"{server.http_url}/api/task-outputs",
        json={
            "flow_execution_id": data["flow_execution_id"],
            "task_name": task_name,
            "summary": summary,
        },
        headers={"Authorization": f"Bearer {data['service_key']}"},
        timeout=10,
    )


def test_api_call_on_one_process_reaches_websocket_on_another(servers):
    a, b, data, _ = servers
    flow_url = f"{a.ws_url}/ws/flows/{data['flow_id']}?token={data['user_key']}"
    with (
        connect(flow_url) as flow_ws,
        connect(
            f"{a.ws_url}/ws/summaries", subprotocols=["bearer", data["user_key"]]
        ) as summary_ws,
    ):
        assert summary_ws.subprotocol == "bearer"
        assert _recv_json(flow_ws)["type"] == "subscribed"
        assert _recv_json(summary_ws)["type"] == "subscribed"

        response = _post_output(b, data, "a", {"rows": 7})
        assert response.status_code == 201, response.text

        on_flow, on_summaries = _recv_json(flow_ws), _recv_json(summary_ws)
        assert on_flow["event_type"] == "task_output.created"
        assert on_flow["data"] == response.json()
        assert on_summaries == on_flow

        flow_ws.send(json.dumps({"action": "ping"}))
        assert _recv_json(flow_ws) == {"type": "pong"}

    # uvicorn logged the WebSocket path, but not the key in its query string
    log = a.log()
    assert "token=[redacted]" in log
    assert data["user_key"] not in log


def test_dead_redis_writes_succeed_and_replay_from_another_process(servers, tmp_path):
    a, _, data, env = servers
    dead_env = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with LiveServer(dead_env, tmp_path / "dead.log") as dead:
        _post_output(dead, data, "b", {"warm": True})  # first request: imports and caches
        responses, durations = [], []
        for task_name in ["a", "b", "c", "a"]:
            started = time.monotonic()
            response = _post_output(dead, data, task_name, {"n": len(responses)})
            durations.append(time.monotonic() - started)
            assert response.status_code in (200, 201), response.text
            responses.append(response.json())
        assert max(durations) < 1.0, durations
        assert httpx.get(f"{dead.http_url}/readyz", timeout=10).status_code == 503

    with connect(f"{a.ws_url}/ws/flows/{data['flow_id']}?token={data['user_key']}") as ws:
        subscribed = _recv_json(ws)
        ws.send(json.dumps({"action": "replay", "since": 0}))
        frames = [_recv_json(ws) for _ in range(len(responses) + 1)]  # + the warm-up's event
        assert _recv_json(ws) == {"type": "replayed", "last_event_id": subscribed["last_event_id"]}
    assert [f["data"] for f in frames[1:]] == responses
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames)
