"""Wake long-polling claims when work is queued, instead of making them poll the database.

In-process only: a claim waiting in this server process is woken at once when a transaction
of this process commits queued work for its organization. Claims waiting in other processes
find the work at their next poll (``POLL_SECONDS``), so several server processes stay correct,
only a little slower to notice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from django.db import transaction

_lock = threading.Lock()
_waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


def notify_on_commit(organization_ids: Iterable[Any]) -> None:
    """Wake the claims of these organizations once the current transaction commits."""
    keys = {str(org_id) for org_id in organization_ids}
    if keys:
        transaction.on_commit(lambda: notify(keys))


def notify(organization_ids: Iterable[str]) -> None:
    with _lock:
        targets = [w for key in organization_ids for w in _waiters.get(key, ())]
    for loop, event in targets:
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the waiting loop has closed meanwhile
            pass


class Waiter:
    """An ``asyncio.Event`` set whenever work for ``organization_id`` is committed."""

    def __init__(self, organization_id: Any) -> None:
        self.key = str(organization_id)
        self.event = asyncio.Event()
        self._entry = (asyncio.get_running_loop(), self.event)

    def __enter__(self) -> Waiter:
        with _lock:
            _waiters.setdefault(self.key, set()).add(self._entry)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            entries = _waiters.get(self.key)
            if entries is not None:
                entries.discard(self._entry)
                if not entries:
                    del _waiters[self.key]

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when woken. Clears the event."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()
