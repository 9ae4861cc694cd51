"""WebSocket communicators against the real ASGI application."""

from __future__ import annotations

import sys
import types
from typing import Any

try:
    from channels.testing import WebsocketCommunicator
except ModuleNotFoundError as exc:
    # channels.testing imports daphne (Twisted) for ChannelsLiveServerTestCase, which this
    # project does not use: it serves with uvicorn and its live tests start real uvicorn
    # processes. A placeholder lets WebsocketCommunicator import without installing Twisted.
    if not (exc.name or "").startswith("daphne"):
        raise
    placeholder = types.ModuleType("daphne.testing")
    placeholder.DaphneProcess = None  # type: ignore[attr-defined]
    sys.modules.setdefault("daphne", types.ModuleType("daphne"))
    sys.modules["daphne.testing"] = placeholder
    from channels.testing import WebsocketCommunicator


def flow_path(flow_id: Any, token: str | None = None) -> str:
    path = f"/ws/flows/{flow_id}"
    return f"{path}?token={token}" if token else path


def summaries_path(token: str | None = None) -> str:
    return f"/ws/summaries?token={token}" if token else "/ws/summaries"


def communicator(
    path: str, *, subprotocols: list[str] | None = None, headers: list | None = None
) -> WebsocketCommunicator:
    from config.asgi import application

    return WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)


async def subscribe(path: str, **kwargs: Any) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """Connect and read the ``subscribed`` frame; fails the test otherwise."""
    comm = communicator(path, **kwargs)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    first = await comm.receive_json_from(timeout=5)
    assert first["type"] == "subscribed", first
    return comm, first


async def expect_close(comm: WebsocketCommunicator, code: int) -> None:
    message = await comm.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    assert message["code"] == code, message


async def receive_events(comm: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    frames = [await comm.receive_json_from(timeout=5) for _ in range(count)]
    assert all(frame["type"] == "event" for frame in frames), frames
    return frames
