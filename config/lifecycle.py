"""Server-process shutdown: stop long-polls and say goodbye to WebSocket clients.

uvicorn, on SIGTERM, stops listening, then closes every open WebSocket with 1012 ("service
restart") and only afterwards tells the application (ASGI lifespan), too late to choose
the code. flowplatform's server (``config.server``) calls ``going_away()`` first,
once it has stopped accepting connections:

- ``flowplatform.shutdown`` begins: the claim long-poll answers at once (an empty list) so
  in-flight requests end quickly, and ``/readyz`` answers 503.
- every WebSocket connection tracked by ``GoingAwayMiddleware`` is closed with **1001**
  ("going away"): clients reconnect (to another process behind the load balancer) and send
  ``{"action": "replay", "since": N}`` for what they missed.

Nothing here imports Django or prometheus_client: gunicorn's master process loads this
module (through the worker class) before it forks the workers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from flowplatform import shutdown

logger = logging.getLogger("flowplatform.lifecycle")

CLOSE_GOING_AWAY = 1001
GOING_AWAY_REASON = "server shutting down"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_connections: set[_WebSocket] = set()


def open_websockets() -> int:
    return len(_connections)


class _WebSocket:
    """One WebSocket connection as the server sees it: which side has accepted or closed."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self._send = send
        self.accepted = False
        self.closed = False
        self.said_goodbye = False

    async def send(self, message: Message) -> None:
        if self.said_goodbye:
            return  # the server closed it already: the application's late frames are moot
        kind = message.get("type")
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close" or kind == "websocket.http.response.start":
            self.closed = True
        try:
            await self._send(message)
        except (OSError, RuntimeError):
            if not self.said_goodbye:
                raise  # a frame that raced with the goodbye is dropped; anything else is not

    async def goodbye(self) -> None:
        """Close with 1001. A connection still in its handshake (authenticating) is
        accepted first, so the client sees the close code rather than a refused handshake."""
        if self.closed or self.said_goodbye:
            return
        self.said_goodbye = True
        self.closed = True
        if not self.accepted:
            offered = self.scope.get("subprotocols") or []
            # Browsers fail a handshake that offered subprotocols and got none back.
            accept: Message = {"type": "websocket.accept"}
            if offered:
                accept["subprotocol"] = offered[0]
            await self._send(accept)
        await self._send(
            {"type": "websocket.close", "code": CLOSE_GOING_AWAY, "reason": GOING_AWAY_REASON}
        )


class GoingAwayMiddleware:
    """Tracks this process's WebSocket connections so ``going_away()`` can close them.

    Also refuses (with 1001) a connection that arrives once shutdown has begun.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        connection = _WebSocket(scope, send)
        if shutdown.begun():
            await connection.goodbye()
            return
        _connections.add(connection)
        try:
            await self.app(scope, receive, connection.send)
        finally:
            _connections.discard(connection)


async def going_away(*, timeout: float = 5.0) -> int:
    """Begin shutdown: close every tracked WebSocket with 1001 and wait (up to ``timeout``)
    for their handlers to finish. Returns how many connections were told.

    Runs on the event loop that serves the connections (uvicorn's, one per process).
    """
    shutdown.begin()
    connections = [c for c in _connections if not c.closed]
    if connections:
        logger.info("closing %d WebSocket connection(s) with 1001", len(connections))
    deadline = time.monotonic() + timeout
    try:
        # A client that does not read its socket can block a send: bounded like the rest.
        await asyncio.wait_for(
            asyncio.gather(*(c.goodbye() for c in connections), return_exceptions=True),
            timeout=timeout,
        )
    except TimeoutError:
        logger.warning("closing WebSockets took longer than %gs", timeout)
    while _connections and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return len(connections)


def reset_for_tests() -> None:
    shutdown.reset()
    _connections.clear()
