"""The documented production serving (``bin/serve-prod``) sends WebSocket frames
uncompressed unless told otherwise: per-message deflate would cost a zlib compression per
frame per subscriber (``bench/ws_fanout.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from config.server import websocket_options
from executions.tests.e2e.conftest import wait_until
from flowplatform.tests.prod import ProdServer, Topology

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topology = Topology(tmp_path)
    yield topology
    topology.stop_all()


def _negotiated_extensions(server: ProdServer) -> str | None:
    def serving() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.name} exited:\n{server.output()}")
        try:
            return httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(serving, timeout=30, what=f"{server.name} serving")
    # Any /ws/ path completes the handshake (then closes 4404): no credentials needed.
    with connect(f"{server.ws_url}/ws/nowhere", compression="deflate", open_timeout=10) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    return extensions


@pytest.mark.parametrize(
    ("setting", "compressed"), [(None, False), ("false", False), ("true", True)]
)
def test_serve_prod_compresses_websocket_frames_only_when_configured(
    topology: Topology, setting: str | None, compressed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WS_PER_MESSAGE_DEFLATE", raising=False)
    extra = {"WS_PER_MESSAGE_DEFLATE": setting} if setting is not None else {}
    server = topology.server("server", **extra)
    extensions = _negotiated_extensions(server)  # offered by the client, as browsers do
    if compressed:
        assert extensions is not None and "permessage-deflate" in extensions
    else:
        assert extensions is None


def test_websocket_options_default_to_no_compression(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WS_PER_MESSAGE_DEFLATE", raising=False)
    assert websocket_options() == {"ws_per_message_deflate": False}
    monkeypatch.setenv("WS_PER_MESSAGE_DEFLATE", "on")
    assert websocket_options() == {"ws_per_message_deflate": True}
