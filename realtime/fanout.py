"""Process-local fan-out: one channel-layer subscription per group per event loop.

A thousand browsers watching one flow in one server process would otherwise be a thousand
layer channels: each message queued, decoded and dispatched a thousand times. Here the
process's consumers of a group share one layer channel. Each message is received and decoded
once and its event frames are serialized once, then handed synchronously to every local
subscriber, which queues them for its own socket. The group is joined when its first local
subscriber arrives and left when its last one goes.
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


class Subscriber(Protocol):
    def on_group_message(self, message: dict[str, Any], frames: dict[int, str]) -> None: ...


def frames_of(message: dict[str, Any]) -> dict[int, str]:
    """The text frame of each event of an ``events.batch`` message, by event id."""
    if message.get("type") != "events.batch":
        return {}
    return {event["id"]: dumps(event).decode() for event in message.get("events", ())}


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
            frames = frames_of(message)
            for subscriber in list(feed.subscribers):
                try:
                    subscriber.on_group_message(message, frames)
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
