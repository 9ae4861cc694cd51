"""The production ASGI server: gunicorn managing uvicorn worker processes.

``UvicornWorker`` is uvicorn's gunicorn worker (``uvicorn.workers``; the same class is
published separately as ``uvicorn-worker``, preferred when installed) with these changes:

- it serves with ``GracefulServer``, which, on SIGTERM, stops accepting connections, then
  closes WebSockets with 1001 and ends claim long-polls (``flowplatform.lifecycle``) before
  uvicorn's own shutdown waits for in-flight requests, and finally pushes the events those
  requests committed that still wait in the background sender;
- uvicorn's graceful-shutdown timeout follows gunicorn's ``--graceful-timeout`` (minus a
  margin), so requests still running then are cancelled by uvicorn before gunicorn kills the
  process;
- WebSocket frames are not compressed (``websocket_options()``): uvicorn negotiates
  per-message deflate by default, which costs a zlib compression per frame *per client*
  while event frames are small (``bench/ws_fanout.py``: a third of the fan-out's CPU with
  1,000 subscribers). ``WS_PER_MESSAGE_DEFLATE=true`` turns it back on.

Run it through ``bin/serve-prod`` (``gunicorn -c python:config.gunicorn_conf``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import warnings
from typing import Any

import uvicorn
from gunicorn.arbiter import Arbiter

from config import lifecycle

try:  # the maintained home of the worker class
    from uvicorn_worker import UvicornWorker as _BaseWorker
except ImportError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from uvicorn.workers import UvicornWorker as _BaseWorker

# Time left, out of gunicorn's graceful timeout, for uvicorn to cancel what still runs and
# for the process to exit before gunicorn sends SIGKILL.
SHUTDOWN_MARGIN_SECONDS = 2.0
GOING_AWAY_TIMEOUT_SECONDS = 3.0
EVENT_FLUSH_SECONDS = 2.0
_TRUE = {"1", "true", "yes", "on", "y", "t"}


def websocket_options() -> dict[str, Any]:
    """uvicorn ``Config`` options for WebSockets, wherever flowplatform configures uvicorn."""
    deflate = os.environ.get("WS_PER_MESSAGE_DEFLATE", "false").strip().lower() in _TRUE
    return {"ws_per_message_deflate": deflate}


class GracefulServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first, so a client told "going away" cannot reconnect to this
        # process; uvicorn's shutdown repeats these (idempotent) steps.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await lifecycle.going_away(timeout=GOING_AWAY_TIMEOUT_SECONDS)
        await super().shutdown(sockets=sockets)
        # The last requests' events may still wait in the background sender: push them
        # before the process ends, or clients of other processes would miss them live.
        await asyncio.to_thread(_flush_events, EVENT_FLUSH_SECONDS)


def _flush_events(timeout: float) -> None:
    # Imported here, not at the top: gunicorn's master loads this module before Django is
    # set up, and only the worker processes send events.
    from realtime.sender import get_sender

    get_sender().flush(timeout)


class UvicornWorker(_BaseWorker):  # type: ignore[misc, valid-type]
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "auto",  # uvloop when installed
        "http": "auto",
        # The application has no lifespan handler (Channels' router would refuse the scope).
        "lifespan": "off",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        grace = float(self.cfg.graceful_timeout)
        self.config.timeout_graceful_shutdown = max(1, int(grace - SHUTDOWN_MARGIN_SECONDS))
        for name, value in websocket_options().items():
            setattr(self.config, name, value)  # read per connection by uvicorn's protocols

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = GracefulServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
