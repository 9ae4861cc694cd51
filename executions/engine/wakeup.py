"""Wake long-polling claims when work is queued, instead of making them poll the database.

In-process only: a claim waiting in this server process is woken at once when a transaction
of this process commits queued work for its organization. Claims waiting in other processes
find the work at their next poll (``POLL_SECONDS``), so several server processes stay correct,
only a little slower to notice.

Only as many claims are woken as tasks were queued, oldest waiter first, and only claims
that serve the tasks' executors: waking every waiting claim for one task made all but one
of them query the database for nothing. A woken claim that finds nothing goes back to
waiting; whatever a wake-up misses, the next poll finds.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction

_lock = threading.Lock()
_order = itertools.count()
_waiters: dict[str, dict[int, Waiter]] = {}


_held: ContextVar[Counter[tuple[str, str | None]] | None] = ContextVar("wakeups_held", default=None)


def notify_on_commit(work: Iterable[tuple[Any, str | None]]) -> None:
    """Once the current transaction commits, wake claims for this work: one
    ``(organization_id, executor name)`` per queued task (``None``: any executor). Inside
    ``holding()`` the wake-ups are kept for its caller instead."""
    counts = Counter((str(org_id), executor) for org_id, executor in work)
    if not counts:
        return
    held = _held.get()
    if held is not None:
        held.update(counts)
    else:
        transaction.on_commit(lambda: notify(counts))


@contextmanager
def holding() -> Iterator[Counter[tuple[str, str | None]]]:
    """Keep the wake-ups of the work this block queues; the block then hands some of that
    work out itself (a report claiming its worker's next task) and sends the rest with
    ``notify_on_commit``, so no claim is woken for work already taken."""
    held: Counter[tuple[str, str | None]] = Counter()
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)


def notify(work: Counter[tuple[str, str | None]]) -> None:
    """Wake, per organization, up to one waiting claim per queued task whose executor it
    serves (oldest first)."""
    targets: list[Waiter] = []
    with _lock:
        for (key, executor), count in work.items():
            for waiter in list(_waiters.get(key, {}).values()):
                if count <= 0:
                    break
                if waiter.woken or not waiter.serves(executor):
                    continue
                waiter.woken = True
                targets.append(waiter)
                count -= 1
    for waiter in targets:
        try:
            waiter.loop.call_soon_threadsafe(waiter.event.set)
        except RuntimeError:  # the waiting loop has closed meanwhile
            pass


class Waiter:
    """An ``asyncio.Event`` set when work for ``organization_id`` (and, when given, one of
    ``executors``) is committed."""

    def __init__(self, organization_id: Any, executors: Iterable[str] | None = None) -> None:
        self.key = str(organization_id)
        self.executors = None if executors is None else frozenset(executors)
        self.event = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.woken = False  # set under ``_lock`` by ``notify``; cleared by ``wait``
        self._id = next(_order)

    def serves(self, executor: str | None) -> bool:
        return executor is None or self.executors is None or executor in self.executors

    def __enter__(self) -> Waiter:
        with _lock:
            _waiters.setdefault(self.key, {})[self._id] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        heir: Waiter | None = None
        with _lock:
            entries = _waiters.get(self.key)
            if entries is not None:
                entries.pop(self._id, None)
                if not entries:
                    del _waiters[self.key]
            if self.woken and entries:
                # Woken for work this claim will not look for (it is answering already):
                # the wake-up goes to the next waiting claim instead of waiting for its poll.
                heir = next((w for w in entries.values() if not w.woken), None)
                if heir is not None:
                    heir.woken = True
        if heir is not None:
            try:
                heir.loop.call_soon_threadsafe(heir.event.set)
            except RuntimeError:
                pass

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when woken. Clears the event, and makes this
        claim wakeable again (its next attempt may still find nothing)."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()
            with _lock:
                self.woken = False
