"""Process-local fan-out: one channel-layer subscription per group per event loop.

A thousand browsers watching one flow in one server process would otherwise be a thousand
layer channels: each message queued, decoded and dispatched a thousand times. Here the
process's consumers of a group share one layer channel. Each message is received and decoded
once; each event's ASGI ``websocket.send`` message (its JSON text) is built once and shared
by every local subscriber, as is the check of which events a stream accepts
(``Delivery``). Subscribers are handed the delivery synchronously, a few dozen at a time
between which the feed lets the event loop run other work (an HTTP response must not wait
for a thousand sockets). The group is joined when its first local subscriber arrives and
left when its last one goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

from flowplatform.renderers import dumps

logger = logging.getLogger(__name__)

RECEIVE_ERROR_PAUSE = 1.0
LOG_INTERVAL = 30.0
FEED_PREFIX = "fanout."
# One feed channel carries what a hundred per-consumer channels used to: give it room. (The
# in-memory layer drops group messages silently once a channel holds ``capacity`` = 100.)
FEED_CAPACITY = 10_000


# Subscribers handed a message before the feed lets the event loop run something else.
DISPATCH_SLICE = 50

SendMessage = dict[str, Any]  # an ASGI ``websocket.send`` message


class StreamFilter(Protocol):
    def __hash__(self) -> int: ...

    def accepts(self, event: dict[str, Any]) -> bool: ...


class Subscriber(Protocol):
    def on_group_message(self, delivery: Delivery) -> None: ...


def send_message(text: str) -> SendMessage:
    """The ASGI message that sends ``text`` as one WebSocket text frame."""
    return {"type": "websocket.send", "text": text}


class Delivery:
    """One group message as this process hands it to its subscribers.

    ``events.batch``: each event is serialized once, into one ASGI send message that every
    subscriber passes to its socket unchanged (ASGI servers only read it), and which events a
    stream accepts is decided once per distinct stream, not once per subscriber.
    """

    __slots__ = ("message", "kind", "_events", "_accepted", "_last")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.kind = message.get("type")
        events = message.get("events", ()) if self.kind == "events.batch" else ()
        self._events = [(event, send_message(dumps(event).decode())) for event in events]
        self._accepted: dict[StreamFilter, list[tuple[int, SendMessage]]] = {}
        self._last: tuple[StreamFilter | None, list[tuple[int, SendMessage]]] = (None, [])

    def events_for(self, stream: StreamFilter) -> list[tuple[int, SendMessage]]:
        """``(event id, send message)`` of the events ``stream`` accepts, in batch order.

        Subscribers that share one stream object (``consumers.shared_stream``) are answered
        by identity, without hashing the stream once per subscriber."""
        last, accepted = self._last
        if stream is last:
            return accepted
        found = self._accepted.get(stream)
        if found is None:
            found = self._accepted[stream] = [
                (event["id"], message) for event, message in self._events if stream.accepts(event)
            ]
        self._last = (stream, found)
        return found


class _Feed:
    def __init__(self, group: str) -> None:
        self.group = group
        self.channel: str | None = None
        self.subscribers: set[Subscriber] = set()
        self.ready: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[None] | None = None


class Fanout:
    """The feeds of one event loop on one channel layer."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.feeds: dict[str, _Feed] = {}
        self._last_error_log = 0.0
        if isinstance(layer, InMemoryChannelLayer):
            _widen_feed_capacity(layer)

    async def join(self, group: str, subscriber: Subscriber) -> None:
        """Deliver ``group``'s messages to ``subscriber`` from now on. Raises if the layer
        cannot subscribe (the subscriber is then not registered)."""
        feed = self.feeds.get(group)
        if feed is None:
            feed = self.feeds[group] = _Feed(group)
            feed.ready = asyncio.get_running_loop().create_task(self._open(feed))
        feed.subscribers.add(subscriber)
        try:
            await asyncio.shield(feed.ready)
        except BaseException:
            feed.subscribers.discard(subscriber)
            if self.feeds.get(group) is feed and not feed.subscribers:
                del self.feeds[group]
            raise

    async def leave(self, group: str, subscriber: Subscriber) -> None:
        feed = self.feeds.get(group)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if feed.subscribers:
            return
        del self.feeds[group]
        if feed.reader is not None:
            feed.reader.cancel()
        if feed.ready is not None and feed.ready.done() and not feed.ready.exception():
            try:
                await self.layer.group_discard(group, feed.channel)
            except Exception:  # noqa: BLE001 - an unreachable layer forgets it anyway
                self._log_error("leaving group %s failed", group)

    async def _open(self, feed: _Feed) -> None:
        feed.channel = await self.layer.new_channel(FEED_PREFIX)
        await self.layer.group_add(feed.group, feed.channel)
        feed.reader = asyncio.get_running_loop().create_task(self._read(feed))

    async def _read(self, feed: _Feed) -> None:
        while True:
            try:
                message = await self.layer.receive(feed.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the feed alive across layer hiccups
                self._log_error("receiving for group %s failed", feed.group)
                await asyncio.sleep(RECEIVE_ERROR_PAUSE)
                continue
            delivery = Delivery(message)
            subscribers = list(feed.subscribers)
            for start in range(0, len(subscribers), DISPATCH_SLICE):
                if start:
                    await asyncio.sleep(0)  # let responses and other sockets through
                for subscriber in subscribers[start : start + DISPATCH_SLICE]:
                    try:
                        subscriber.on_group_message(delivery)
                    except Exception:  # noqa: BLE001 - one broken subscriber must not stop others
                        logger.exception("A subscriber of %s failed on a message", feed.group)

    def _log_error(self, text: str, group: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= LOG_INTERVAL:
            self._last_error_log = now
            logger.warning("Channel layer: " + text, group, exc_info=True)


def _widen_feed_capacity(layer: InMemoryChannelLayer) -> None:
    """Feed channels of the in-memory layer hold up to ``FEED_CAPACITY`` messages.

    (Its ``channel_capacity`` option would be the way, but channels 4.3 never compiles it
    for this layer, so a configured pattern breaks ``get_capacity``.)
    """
    current = layer.get_capacity
    if getattr(current, "_realtime_feeds", False):
        return

    def get_capacity(channel: str) -> int:
        return FEED_CAPACITY if channel.startswith(FEED_PREFIX) else current(channel)

    get_capacity._realtime_feeds = True  # type: ignore[attr-defined]
    layer.get_capacity = get_capacity  # type: ignore[method-assign]


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def get_fanout() -> Fanout:
    """The fan-out of the running event loop on the default channel layer."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    fanout = _fanouts.get(loop)
    if fanout is None or fanout.layer is not layer:
        fanout = _fanouts[loop] = Fanout(layer)
    return fanout
