"""Sending one frame to a socket on the caller's stack: a thousand subscribers of an event
are a thousand writes, not a thousand tasks woken (``realtime.consumers``)."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


def start_now(send: Awaitable[None]) -> Awaitable[None] | None:
    """Run ``send`` on the caller's stack until it completes (None) or has to wait: then
    an awaitable that finishes it. (What Python 3.12's eager tasks do, without a task.)"""
    if not isinstance(send, types.CoroutineType):  # e.g. a Future: the writer awaits it
        return send
    try:
        waiting_on = send.send(None)
    except StopIteration:
        return None
    return _finish(send, waiting_on)


@types.coroutine
def _finish(send: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """The rest of a coroutine that suspended on ``waiting_on``, driven by the awaiting task."""
    while True:
        try:
            received = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 - cancellation goes to the coroutine
            try:
                waiting_on = send.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = send.send(received)
            except StopIteration:
                return
