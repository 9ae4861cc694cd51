"""Server shutdown in one process: WebSockets closed with 1001, long-polls ended, not ready.

The same through real gunicorn processes: test_production_e2e.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from config import lifecycle
from config.lifecycle import CLOSE_GOING_AWAY, GoingAwayMiddleware
from flowplatform import shutdown
from realtime.tests.factories import make_flow
from realtime.tests.ws import WebsocketCommunicator, flow_path, subscribe


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_lifecycle() -> Iterator[None]:
    lifecycle.reset_for_tests()
    yield
    lifecycle.reset_for_tests()


class EchoApp:
    """A minimal WebSocket application: accepts (unless told to wait), echoes, and keeps
    sending ticks so a late frame races with the goodbye."""

    def __init__(self, *, accept_after: asyncio.Event | None = None) -> None:
        self.accept_after = accept_after
        self.finished = asyncio.Event()
        self.disconnect_code: int | None = None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        assert (await receive())["type"] == "websocket.connect"
        if self.accept_after is not None:
            await self.accept_after.wait()
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.disconnect_code = message.get("code")
                    return
                await send({"type": "websocket.send", "text": message.get("text", "")})
        finally:
            self.finished.set()


async def _closed_with(comm: WebsocketCommunicator) -> dict:
    while True:
        message = await comm.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return message


@pytest.mark.anyio
async def test_going_away_closes_open_websockets_with_1001() -> None:
    app = EchoApp()
    comm = WebsocketCommunicator(GoingAwayMiddleware(app), "/ws/x")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await comm.send_to(text_data="hello")
    assert await comm.receive_from(timeout=5) == "hello"
    assert lifecycle.open_websockets() == 1

    told = await lifecycle.going_away(timeout=2)

    assert told == 1
    assert shutdown.begun()
    closed = await _closed_with(comm)
    assert closed["code"] == CLOSE_GOING_AWAY
    # The application hears of it like any disconnect, ends, and is no longer tracked.
    await comm.send_input({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
    await asyncio.wait_for(app.finished.wait(), 5)
    assert app.disconnect_code == CLOSE_GOING_AWAY
    await comm.wait(timeout=5)
    assert lifecycle.open_websockets() == 0


@pytest.mark.anyio
async def test_a_connection_still_authenticating_is_accepted_then_closed_with_1001() -> None:
    release = asyncio.Event()
    app = EchoApp(accept_after=release)
    comm = WebsocketCommunicator(
        GoingAwayMiddleware(app), "/ws/x", subprotocols=["bearer", "fpk_secret"]
    )
    await comm.send_input({"type": "websocket.connect"})
    await asyncio.sleep(0.05)

    await lifecycle.going_away(timeout=0.5)

    accepted = await comm.receive_output(timeout=5)
    assert accepted == {"type": "websocket.accept", "subprotocol": "bearer"}
    assert (await comm.receive_output(timeout=5))["code"] == CLOSE_GOING_AWAY
    release.set()  # the application's own accept, now late, is dropped
    await comm.send_input({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
    await asyncio.wait_for(app.finished.wait(), 5)
    assert await comm.receive_nothing(timeout=0.2)
    await comm.wait(timeout=5)


@pytest.mark.anyio
async def test_a_connection_arriving_during_shutdown_is_closed_with_1001() -> None:
    await lifecycle.going_away(timeout=0.1)
    app = EchoApp()
    comm = WebsocketCommunicator(GoingAwayMiddleware(app), "/ws/x")
    await comm.send_input({"type": "websocket.connect"})
    assert (await comm.receive_output(timeout=5))["type"] == "websocket.accept"
    assert (await comm.receive_output(timeout=5))["code"] == CLOSE_GOING_AWAY
    assert not app.finished.is_set()  # never reached the application


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_flow_subscriber_of_the_real_application_gets_1001(tenant) -> None:  # noqa: ANN001
    flow = await sync_to_async(make_flow)(tenant.organization)
    try:
        comm, first = await subscribe(flow_path(flow.id, tenant.user_key))
        assert first["type"] == "subscribed"
        await lifecycle.going_away(timeout=2)
        closed = await _closed_with(comm)
        assert closed["code"] == CLOSE_GOING_AWAY
        await comm.send_input({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
        await comm.wait(timeout=5)
        assert lifecycle.open_websockets() == 0
    finally:
        await sync_to_async(connections.close_all)()


@pytest.mark.django_db
def test_readyz_answers_503_while_shutting_down(anon_client) -> None:  # noqa: ANN001
    assert anon_client.get("/readyz").status_code == 200
    shutdown.begin()
    response = anon_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "shutting_down"
    assert anon_client.get("/healthz").status_code == 200  # still alive


@pytest.mark.django_db(transaction=True)
def test_claim_long_poll_answers_at_once_while_shutting_down(service_client) -> None:  # noqa: ANN001
    body = {"worker_id": "w1", "executors": ["noop"], "limit": 1, "wait_seconds": 20}
    started = time.monotonic()
    shutdown.begin()
    response = service_client.post("/api/task-executions/claim", body, format="json")
    assert response.status_code == 200
    assert response.json() == {"task_executions": []}
    assert time.monotonic() - started < 10  # not the 20 s it asked to wait

    shutdown.reset()  # the control: the same call waits for its deadline
    started = time.monotonic()
    service_client.post("/api/task-executions/claim", {**body, "wait_seconds": 1}, format="json")
    assert time.monotonic() - started >= 0.9
