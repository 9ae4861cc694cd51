"""WebSocket consumers: ``/ws/flows/{flow_id}`` and ``/ws/summaries``.

Protocol (JSON text frames):

- server → ``{"type": "subscribed", "last_event_id": N}`` first, once authenticated and
  authorized; N is the newest event id of the stream at that moment. Failures: the socket is
  accepted, then closed with 4401 (no, malformed, unknown or revoked credential) or 4404
  (unknown, foreign or deleted flow; unknown path), so browsers can read the code.
- server → ``{"type": "event", "id", "event_type", "organization_id", "flow_id",
  "flow_execution_id", "task_name", "created_at", "data"}`` for each event, live.
- client → ``{"action": "replay", "since": ID}``: every event of the stream with id > ID, in
  id order (read from the outbox in pages), then the live events that arrived meanwhile, then
  ``{"type": "replayed", "last_event_id": M}`` (M: the highest id sent on this connection, or
  N). No event is sent twice on a connection.
- client → ``{"action": "ping"}``: ``{"type": "pong"}``.
- anything else: ``{"type": "error", "message": "..."}``; the connection stays open.
- a client too slow to take its frames is closed with 1013 (reconnect and replay); when the
  channel layer is unreachable at subscription, 1011.

Consumers never write: authentication, authorization and outbox reads go through selectors
in a worker thread (``database_sync_to_async``). Live events come from ``realtime.fanout``
(one layer subscription per group per process, each event's frame built once per process).

Sending: a frame goes to the socket at once, on the caller's stack, while the connection has
nothing queued (``sending.start_now``): with a thousand subscribers that is a thousand writes, not a
thousand tasks woken. A send that has to wait (the client is not reading and the server's
buffer is full) is finished by a writer task; frames queued meanwhile wait in the
connection's outbox, bounded, and the writer sends them in order. So frames are never
reordered or interleaved, and a slow client delays only itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable
from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from flowplatform import metrics, tenancy
from flowplatform.principal import Principal
from flowplatform.renderers import dumps
from realtime import selectors
from realtime.auth import Credentials, authenticate, credentials_from_scope
from realtime.fanout import Delivery, Fanout, SendMessage, get_fanout, send_message
from realtime.selectors import REPLAY_PAGE_SIZE, Stream
from realtime.sender import note_consumer_loop
from realtime.sending import start_now

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_LAYER_UNAVAILABLE = 1011
CLOSE_TOO_SLOW = 1013
MAX_FRAME_CHARS = 4096
MAX_OUTBOX_FRAMES = 10_000
SENT_IDS_REMEMBERED = 10_000
MAX_PENDING_DURING_REPLAY = 10_000
LOG_INTERVAL = 30.0

_last_layer_warning = 0.0


def _count(metric: str, *labels: str) -> None:
    counter = getattr(metrics, metric, None)
    if counter is not None:
        (counter.labels(*labels) if labels else counter).inc()


# Reads run in Django's thread for sync code (one per process: a bounded number of database
# connections), each in its own short transaction scoped to the caller's organization
# (row-level security on PostgreSQL): a consumer has no request transaction that
# authentication could have scoped.
_in_thread = database_sync_to_async


@_in_thread
def _latest_event_id(stream: Stream) -> int:
    with tenancy.activate(stream.organization_id):
        return selectors.latest_event_id(stream=stream)


@_in_thread
def _events_page(stream: Stream, after: int, upto: int) -> list[dict[str, Any]]:
    with tenancy.activate(stream.organization_id):
        return selectors.events_page(stream=stream, after=after, upto=upto, limit=REPLAY_PAGE_SIZE)


# One Stream object per stream in this process: the fan-out recognises the subscribers of a
# stream by identity (hashing a Stream hashes its UUIDs in Python, per subscriber per event).
_streams: weakref.WeakValueDictionary[Stream, Stream] = weakref.WeakValueDictionary()


def shared_stream(stream: Stream) -> Stream:
    """The process's one object equal to ``stream``."""
    return _streams.setdefault(stream, stream)


def _frame(payload: dict[str, Any]) -> SendMessage:
    # orjson, or the stdlib for integers past 64 bits
    return send_message(dumps(payload).decode())


class EventStreamConsumer(AsyncWebsocketConsumer):
    """Authenticate, authorize, subscribe; forward live events; replay from the outbox."""

    # No channel of its own: live messages arrive through the process's fan-out.
    channel_layer_alias = None

    async def connect(self) -> None:
        note_consumer_loop(asyncio.get_running_loop())
        self.stream: Stream | None = None
        self.last_event_id = 0
        self.floor = 0  # the lowest id this client asked to be covered from
        self._fanout: Fanout | None = None
        self._sent: OrderedDict[int, None] = OrderedDict()
        self._outbox: deque[SendMessage] = deque()  # frames waiting behind the writer's
        self._closing = False
        self._subscribed = False
        self._buffering = True  # live events wait in _pending until subscribed / replayed
        self._pending: dict[int, SendMessage] = {}
        self._pending_overflow = False
        self._replay_task: asyncio.Task[None] | None = None
        self._resync_since: int | None = None  # a resync that arrived during a replay
        self._writer: asyncio.Task[None] | None = None

        credentials = credentials_from_scope(self.scope)
        principal, stream = await _in_thread(self._open)(credentials)
        # Accept before closing so browsers see the close code; answer the bearer
        # subprotocol the client offered or a browser fails the handshake instead.
        await self.accept(subprotocol=credentials.subprotocol)
        if principal is None:
            _count("WEBSOCKET_CONNECTIONS", "unauthenticated")
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="unauthenticated")
            return
        if stream is None:
            _count("WEBSOCKET_CONNECTIONS", "not_found")
            await self.close(code=CLOSE_NOT_FOUND, reason="not found")
            return
        self.stream = stream = shared_stream(stream)
        # Join before reading the latest id: any event committed after that read is pushed
        # after it too, so it reaches this connection live.
        fanout = get_fanout()
        try:
            await fanout.join(stream.group, self)
        except Exception:  # noqa: BLE001 - e.g. Redis down: the client retries later
            self.stream = None
            _warn_layer_unavailable()
            _count("WEBSOCKET_CONNECTIONS", "layer_unavailable")
            await self.close(code=CLOSE_LAYER_UNAVAILABLE, reason="try again later")
            return
        self._fanout = fanout
        self.last_event_id = self.floor = await _latest_event_id(stream)
        _count("WEBSOCKET_CONNECTIONS", "accepted")
        self._enqueue(_frame({"type": "subscribed", "last_event_id": self.last_event_id}))
        self._subscribed = True
        self._flush_pending()

    def _open(self, credentials: Credentials) -> tuple[Principal | None, Stream | None]:
        """Authenticate, then authorize the stream (sync, in a worker thread)."""
        principal = authenticate(credentials) if credentials.present else None
        if principal is None:
            return None, None
        return principal, self.stream_for(principal)

    def stream_for(self, principal: Principal) -> Stream | None:
        """The stream this path names, if ``principal`` may read it (sync, in a thread)."""
        raise NotImplementedError

    async def disconnect(self, code: int) -> None:
        self._closing = True
        for task in (self._replay_task, self._writer):
            if task is not None and not task.done():
                task.cancel()
        if self._fanout is not None and self.stream is not None:
            await self._fanout.leave(self.stream.group, self)
            _count("WEBSOCKET_DISCONNECTIONS")

    # client → server ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self._subscribed:
            return
        if text_data is None:
            self._error("Send JSON text frames.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            self._error("Message too large.")
            return
        try:
            message = orjson.loads(text_data)
        except orjson.JSONDecodeError:
            self._error("Invalid JSON.")
            return
        if not isinstance(message, dict):
            self._error('Expected a JSON object like {"action": "ping"}.')
            return
        action = message.get("action")
        if action == "ping":
            self._enqueue(_frame({"type": "pong"}))
        elif action == "replay":
            since = message.get("since")
            if isinstance(since, bool) or not isinstance(since, int) or since < 0:
                self._error('"since" must be a non-negative integer event id.')
                return
            if self._replay_task is not None:
                self._error("A replay is already in progress.")
                return
            self.floor = min(self.floor, since)
            self._start_replay(since, announce=True)
        else:
            self._error('Unknown action; use "replay" or "ping".')

    def _error(self, text: str) -> None:
        self._enqueue(_frame({"type": "error", "message": text}))

    # fan-out → server (synchronous: runs on the loop between awaits) ------------------------

    def on_group_message(self, delivery: Delivery) -> None:
        if self.stream is None or self._closing:
            return
        kind = delivery.kind
        if kind == "events.batch":
            for event_id, frame in delivery.events_for(self.stream):
                if self._buffering:
                    self._buffer(event_id, frame)
                else:
                    self._send_event(event_id, frame)
        elif kind == "events.resync" and self._subscribed:
            # The publisher could not deliver batches after ``since``: read the outbox.
            since = delivery.message.get("since")
            since = max(since if isinstance(since, int) else self.last_event_id, self.floor)
            if self._replay_task is None:
                self._start_replay(since, announce=False)
            else:  # after the running replay, which may have read its range already
                self._resync_since = min(since, self._resync_since or since)

    # replay ---------------------------------------------------------------------------------

    def _start_replay(self, since: int, *, announce: bool) -> None:
        self._buffering = True
        self._replay_task = asyncio.get_running_loop().create_task(
            self._replay(since, announce=announce)
        )

    async def _replay(self, since: int, *, announce: bool) -> None:
        """Send events after ``since`` from the outbox while live events wait in a buffer."""
        assert self.stream is not None
        try:
            cursor = since
            while True:
                self._pending_overflow = False
                upto = await _latest_event_id(self.stream)
                while cursor < upto:
                    await self._outbox_drained()  # backpressure: one page at a time
                    page = await _events_page(self.stream, cursor, upto)
                    for event in page:
                        self._send_event(event["id"], _frame(event))
                    if page:
                        cursor = page[-1]["id"]
                    if len(page) < REPLAY_PAGE_SIZE:
                        break
                if not self._pending_overflow:
                    break
                # More live events came than we buffer: they are all in the outbox, read on.
                self._pending.clear()
            self._finish_replay(announce)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - report to the client, keep the connection
            logger.exception("Replay failed")
            self._finish_replay(False)
            self._error("Replay failed; try again.")

    def _finish_replay(self, announce: bool) -> None:
        # No await from here on: no live event can slip in between these steps.
        self._flush_pending()
        if announce:
            self._enqueue(_frame({"type": "replayed", "last_event_id": self.last_event_id}))
        self._replay_task = None
        if self._resync_since is not None and not self._closing:
            since, self._resync_since = self._resync_since, None
            self._start_replay(since, announce=False)

    def _flush_pending(self) -> None:
        for event_id in sorted(self._pending):
            self._send_event(event_id, self._pending[event_id])
        self._pending.clear()
        self._pending_overflow = False
        self._buffering = False

    def _buffer(self, event_id: int, frame: SendMessage) -> None:
        if self._pending_overflow:
            return
        self._pending[event_id] = frame
        if len(self._pending) > MAX_PENDING_DURING_REPLAY and self._replay_task is not None:
            self._pending.clear()
            self._pending_overflow = True

    # sending --------------------------------------------------------------------------------

    def _send_event(self, event_id: int, frame: SendMessage) -> None:
        """Send one event frame unless this connection already had it."""
        if event_id in self._sent:
            return
        self._sent[event_id] = None
        if len(self._sent) > SENT_IDS_REMEMBERED:
            self._sent.popitem(last=False)
        if event_id > self.last_event_id:
            self.last_event_id = event_id
        self._enqueue(frame)

    def _enqueue(self, frame: SendMessage) -> None:
        """Send ``frame`` now if nothing is queued before it, else queue it (bounded)."""
        if self._closing:
            return
        if self._writer is None:
            try:
                rest = start_now(self.base_send(frame))
            except (OSError, RuntimeError):  # the client went away, or the socket is closed
                self._closing = True
                return
            if rest is not None:  # the socket is not taking more now: the writer waits
                self._writer = asyncio.get_running_loop().create_task(self._write(rest))
            return
        if len(self._outbox) >= MAX_OUTBOX_FRAMES:
            self._closing = True
            self._outbox.clear()
            asyncio.get_running_loop().create_task(
                self.close(code=CLOSE_TOO_SLOW, reason="too slow; reconnect and replay")
            )
            return
        self._outbox.append(frame)

    async def _outbox_drained(self) -> None:
        while self._writer is not None:
            await asyncio.wait((self._writer,))

    async def _write(self, rest: Awaitable[None]) -> None:
        """Finish the send that had to wait, then the frames queued behind it, in order."""
        try:
            await rest
            while self._outbox:
                await self.base_send(self._outbox.popleft())
        except (OSError, RuntimeError):  # the client went away, or the socket is closed
            self._closing = True
        finally:
            self._writer = None


def _warn_layer_unavailable() -> None:
    global _last_layer_warning
    now = time.monotonic()
    if now - _last_layer_warning >= LOG_INTERVAL:
        _last_layer_warning = now
        logger.warning("Channel layer unavailable: refusing WebSocket subscriptions (1011)")


class FlowConsumer(EventStreamConsumer):
    """``/ws/flows/{flow_id}``: every event of one flow of the caller's organization. Which
    flows exist is ``flow_visible``'s answer, given by the routing."""

    flow_visible: selectors.FlowVisible | None = None

    def __init__(self, *args: Any, flow_visible: selectors.FlowVisible, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flow_visible = flow_visible

    def stream_for(self, principal: Principal) -> Stream | None:
        flow_id = self.scope["url_route"]["kwargs"]["flow_id"]
        assert self.flow_visible is not None
        with tenancy.activate(principal.organization_id):
            return selectors.flow_stream(
                organization=principal.organization,
                flow_id=flow_id,
                flow_visible=self.flow_visible,
            )


class SummaryConsumer(EventStreamConsumer):
    """``/ws/summaries``: the organization's task-output events."""

    def stream_for(self, principal: Principal) -> Stream | None:
        return selectors.summary_stream(organization=principal.organization)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other ``/ws/`` path: accepted and closed with 4404, like a missing flow."""

    channel_layer_alias = None

    async def connect(self) -> None:
        credentials = credentials_from_scope(self.scope)
        await self.accept(subprotocol=credentials.subprotocol)
        await self.close(code=CLOSE_NOT_FOUND, reason="not found")
