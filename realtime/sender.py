"""Delivery of event batches to a channel layer without ever blocking the caller.

Two ways, chosen by the layer:

- The in-memory layer lives inside one process and its queues belong to the event loop the
  consumers run on. Batches are sent on *that* loop: with ``async_to_sync`` from a thread
  asgiref links to it (a sync view under ASGI), or scheduled onto it from any other thread.
- Any other layer (Redis) goes over the network. Batches are handed to one background thread
  per process that owns its own event loop and connection, sends with a short timeout and,
  once the layer has failed, stops trying for a few seconds (a circuit breaker) so a dead or
  hanging Redis costs the request nothing. The queue is bounded: when it is full, batches are
  dropped. Nothing is lost for good: every event is in the outbox and clients replay it.

Failures are logged at most once per ``LOG_INTERVAL`` seconds with a count, never per event.
When the layer recovers, every group that missed a batch gets an ``events.resync`` message so
its consumers fetch what they missed from the outbox.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer
from django.conf import settings

from flowplatform import metrics

logger = logging.getLogger("realtime.publisher")

GroupMessage = tuple[str, dict[str, Any]]

LOG_INTERVAL = 30.0
MAX_BACKOFF = 5.0
MAX_RESYNC_GROUPS = 10_000


def _count(metric_name: str, amount: float = 1) -> None:
    metric = getattr(metrics, metric_name, None)
    if metric is not None:
        metric.inc(amount)


def _event_ids(batches: Sequence[GroupMessage]) -> set[int]:
    return {event["id"] for _, message in batches for event in message.get("events", ())}


def _event_count(batches: Sequence[GroupMessage]) -> int:
    return len(_event_ids(batches))


# What a layer raises for a message it cannot encode (msgpack: an integer wider than 64 bits,
# an unknown type), as opposed to a transport failure.
UNENCODABLE = (TypeError, ValueError, OverflowError)


async def send_batches(layer: Any, batches: Sequence[GroupMessage]) -> None:
    for group, message in batches:
        try:
            await layer.group_send(group, message)
        except UNENCODABLE:
            ids = sorted(event["id"] for event in message.get("events", ()))
            if not ids:
                raise
            # The outbox has no such limit: subscribers read these events from it instead.
            logger.warning(
                "Events %d..%d could not be encoded for the channel layer; asking %s to read"
                " them from the outbox",
                ids[0],
                ids[-1],
                group,
            )
            await layer.group_send(group, {"type": "events.resync", "since": ids[0] - 1})


# -- in-memory layer: deliver on the consumers' event loop --------------------------------------

_consumer_loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None


def note_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by consumers: the loop whose in-memory queues they wait on."""
    global _consumer_loop
    if _consumer_loop is None or _consumer_loop() is not loop:
        _consumer_loop = weakref.ref(loop)


def _live_consumer_loop() -> asyncio.AbstractEventLoop | None:
    loop = _consumer_loop() if _consumer_loop is not None else None
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def deliver_in_process(layer: Any, batches: Sequence[GroupMessage]) -> None:
    loop = _live_consumer_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None:
        # No consumer in this process is listening; send anyway so code that reads the layer
        # directly (tests) sees the messages. Outside an event loop this is cheap and local.
        if running is None:
            async_to_sync(send_batches)(layer, batches)
        else:
            running.create_task(send_batches(layer, batches))
        _count("EVENTS_PUBLISHED", _event_count(batches))
        return
    if running is loop:
        task = loop.create_task(send_batches(layer, batches))
        task.add_done_callback(_log_task_failure)
    else:
        # A sync view under ASGI, a worker thread, a test helper thread: schedule on the
        # consumers' loop (thread-safe) and return at once.
        future = asyncio.run_coroutine_threadsafe(send_batches(layer, batches), loop)
        future.add_done_callback(_log_task_failure)
    _count("EVENTS_PUBLISHED", _event_count(batches))


def _log_task_failure(future: Any) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        _count("PUBLISH_FAILURES")
        logger.warning(
            "In-process event delivery failed (%s); events remain replayable",
            type(exc).__name__,
        )


# -- network layers: one background sender per process -----------------------------------------


class BackgroundSender:
    """A daemon thread with its own event loop that sends queued batches to the layer."""

    def __init__(
        self,
        *,
        maxsize: int = 1000,
        send_timeout: float = 2.0,
        log_interval: float = LOG_INTERVAL,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.maxsize = maxsize
        self.send_timeout = send_timeout
        self.log_interval = log_interval
        self.max_backoff = max_backoff
        self._start_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[tuple[Any, Sequence[GroupMessage]]] = queue.Queue(self.maxsize)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._stopping = False
        # circuit breaker and rate-limited reporting
        self._down_until = 0.0
        self._backoff = 0.0
        self._undelivered_batches = 0
        self._undelivered_events = 0
        self._last_error = ""
        self._last_log = 0.0
        self._missed_groups: set[str] = set()
        self._missed_overflow = False
        self._missed_layer: Any = None
        self._missed_since: int | None = None  # the id just before the first undelivered one

    # producer side (any thread) ---------------------------------------------------------------

    def submit(self, layer: Any, batches: Sequence[GroupMessage]) -> bool:
        """Queue ``batches`` for sending; False when the queue is full (dropped). Never blocks."""
        if not batches:
            return True
        self._ensure_started()
        try:
            self._queue.put_nowait((layer, batches))
        except queue.Full:
            self._note_undelivered(layer, batches, "send queue full")
            return False
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # loop closed at interpreter exit
                pass
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued batch has been sent or given up on (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:  # taken and done, not merely taken
                return True
            time.sleep(0.005)
        return False

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping = True
        loop, wakeup, thread = self._loop, self._wakeup, self._thread
        if loop is not None and wakeup is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread does not exist here
            with self._start_lock:
                if self._pid != os.getpid():
                    self._reset()
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="realtime-sender", daemon=True
            )
            self._thread.start()
            ready.wait(5)

    # the sender thread ------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._wakeup = asyncio.Event()
        self._loop = loop
        ready.set()
        try:
            loop.run_until_complete(self._main())
        except Exception:  # noqa: BLE001 - the thread must not die silently
            logger.exception("The event sender stopped unexpectedly")
        finally:
            self._loop = None
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._drain()
            if self._stopping:
                return
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _drain(self) -> None:
        while True:
            try:
                layer, batches = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                await self._send(layer, batches)
            finally:
                self._queue.task_done()

    async def _send(self, layer: Any, batches: Sequence[GroupMessage]) -> None:
        if time.monotonic() < self._down_until:
            self._note_undelivered(layer, batches, self._last_error or "layer unavailable")
            return
        try:
            await asyncio.wait_for(send_batches(layer, batches), timeout=self.send_timeout)
        except Exception as exc:  # noqa: BLE001 - anything the layer raises, incl. timeouts
            self._backoff = min(max(self._backoff * 2, 0.5), self.max_backoff)
            self._down_until = time.monotonic() + self._backoff
            reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            self._last_error = reason[:200]
            _count("PUBLISH_FAILURES")
            self._note_undelivered(layer, batches, self._last_error)
            return
        _count("EVENTS_PUBLISHED", _event_count(batches))
        if self._backoff or self._undelivered_batches or self._missed_groups:
            await self._recovered(layer)

    async def _recovered(self, layer: Any) -> None:
        self._backoff = 0.0
        self._down_until = 0.0
        with self._stats_lock:
            batches, events = self._undelivered_batches, self._undelivered_events
            groups = sorted(self._missed_groups) if layer is self._missed_layer else []
            since = self._missed_since
            overflow = self._missed_overflow
            self._undelivered_batches = self._undelivered_events = 0
            self._missed_groups = set()
            self._missed_since = None
            self._missed_overflow = False
            self._last_log = 0.0
        if not batches and not groups:
            return
        logger.warning(
            "Channel layer reachable again; %d batch(es) (%d event(s)) were not delivered live"
            " and stay replayable; asking %d group(s) to resync%s",
            batches,
            events,
            len(groups),
            " (more groups missed events than are tracked)" if overflow else "",
        )
        for group in groups:
            try:
                await asyncio.wait_for(
                    layer.group_send(group, {"type": "events.resync", "since": since}),
                    timeout=self.send_timeout,
                )
            except Exception:  # noqa: BLE001 - best effort; clients can still replay
                return

    def _note_undelivered(self, layer: Any, batches: Sequence[GroupMessage], reason: str) -> None:
        ids = _event_ids(batches)
        with self._stats_lock:
            self._undelivered_batches += 1
            self._undelivered_events += len(ids)
            if self._missed_layer is not layer:
                self._missed_layer = layer
                self._missed_groups = set()
                self._missed_since = None
            if ids:
                before_first = min(ids) - 1
                if self._missed_since is None or before_first < self._missed_since:
                    self._missed_since = before_first
            for group, _ in batches:
                if len(self._missed_groups) < MAX_RESYNC_GROUPS:
                    self._missed_groups.add(group)
                else:
                    self._missed_overflow = True
            now = time.monotonic()
            if self._last_log and now - self._last_log < self.log_interval:
                return
            self._last_log = now
            batches_so_far, events_so_far = self._undelivered_batches, self._undelivered_events
        logger.warning(
            "Channel layer unavailable (%s): %d batch(es) (%d event(s)) not delivered live so"
            " far; they stay in the outbox for replay",
            reason,
            batches_so_far,
            events_so_far,
        )


_sender: BackgroundSender | None = None
_sender_lock = threading.Lock()


def get_sender() -> BackgroundSender:
    global _sender
    if _sender is None:
        with _sender_lock:
            if _sender is None:
                _sender = BackgroundSender(
                    maxsize=getattr(settings, "FLOWPLATFORM_REALTIME_QUEUE_SIZE", 1000),
                    send_timeout=getattr(settings, "FLOWPLATFORM_REALTIME_SEND_TIMEOUT", 2.0),
                )
                atexit.register(_sender.stop)
    return _sender


def deliver(layer: Any, batches: Sequence[GroupMessage]) -> None:
    """Send ``batches`` to ``layer`` in the right way for that layer. Never raises."""
    if not batches:
        return
    try:
        if isinstance(layer, InMemoryChannelLayer):
            deliver_in_process(layer, batches)
        else:
            get_sender().submit(layer, batches)
    except Exception:  # noqa: BLE001 - the outbox keeps everything for replay
        _count("PUBLISH_FAILURES")
        logger.exception("Handing %d event batch(es) to the channel layer failed", len(batches))
