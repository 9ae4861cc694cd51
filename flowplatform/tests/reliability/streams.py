"""WebSocket helpers for rows 10 and 11: read what a subscription delivers, replay the rest,
and compare with the outbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


@dataclass
class Received:
    """Event ids one connection delivered, in order, and how it ended."""

    ids: list[int] = field(default_factory=list)
    subscribed_at: int | None = None
    replayed_to: int | None = None
    close_code: int | None = None

    @property
    def duplicates(self) -> int:
        return len(self.ids) - len(set(self.ids))


def read(
    ws: Any,
    received: Received,
    *,
    quiet: float,
    until_replayed: bool = False,
    at_most: float = 120,
) -> Received:
    """Read frames until none came for ``quiet`` seconds (or, with ``until_replayed``, until the
    ``replayed`` frame), the server closed the connection, or ``at_most`` seconds passed."""
    deadline = time.monotonic() + at_most
    while time.monotonic() < deadline:
        try:
            frame = json.loads(ws.recv(timeout=quiet))
        except TimeoutError:
            if until_replayed:
                continue
            break
        except ConnectionClosed as closed:
            received.close_code = closed.rcvd.code if closed.rcvd else None
            break
        kind = frame.get("type")
        if kind == "subscribed":
            received.subscribed_at = frame["last_event_id"]
        elif kind == "event":
            received.ids.append(frame["id"])
        elif kind == "replayed":
            received.replayed_to = frame["last_event_id"]
            if until_replayed:
                break
    return received


@contextmanager
def subscribe(url: str, **kwargs: Any) -> Iterator[tuple[Any, Received]]:
    """A subscription (the ``subscribed`` frame read) as ``(websocket, received)``."""
    with connect(url, max_size=None, **kwargs) as ws:
        received = Received()
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "subscribed", first
        received.subscribed_at = first["last_event_id"]
        yield ws, received


def replay(url: str, since: int) -> Received:
    """A new connection that asks for everything after ``since``."""
    with subscribe(url) as (ws, received):
        ws.send(json.dumps({"action": "replay", "since": since}))
        read(ws, received, quiet=2.0, until_replayed=True)
        read(ws, received, quiet=0.5)  # live ones that came meanwhile
    return received


def outbox_ids(flow_id: str, after: int) -> list[int]:
    from realtime.models import Event

    return list(
        Event.objects.filter(flow_id=flow_id, id__gt=after)
        .order_by("id")
        .values_list("id", flat=True)
    )
