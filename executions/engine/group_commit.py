"""Group commit: operations on one key, arriving at once in one process, decided together.

Every worker report holds its flow execution's row lock from its first statement to its
commit, so the reports of one flow execution run one after another. Handing that lock from
one request thread to the next costs more than the work done under it (a wake-up of another
thread, which then queues for the interpreter behind every other request of the process:
``bench/README.md``, "Engine throughput"). A ``GroupCommit`` lets the first thread that
arrives for a key lead: it decides the reports waiting for that key in one transaction (one
lock, one commit) while the others wait, then wakes them with their own results, or their own
errors. Work that arrives while a batch runs forms the next batch, led by its first arrival,
so no caller waits for more than the batch ahead of it and its own.

A caller learns its result only after the transaction that decided it has committed; when
the commit fails, every caller of that batch gets the error (nothing is reported as done that
was not stored).

A caller in an event loop awaits ``submit_async`` instead: it waits in its loop, without a
thread of its own, and the batches it would lead run on a thread it provides (``start``).
A request waiting for the batch ahead of its own then costs no thread hop at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH = 32


@dataclass(eq=False)
class Entry(Generic[T]):
    """One caller's work, and what became of it."""

    work: T
    result: Any = None
    error: BaseException | None = None
    leads: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    # A caller awaiting ``submit_async``: woken through its loop; a batch handed to it to
    # lead runs through its ``start``.
    future: asyncio.Future[None] | None = None
    start: Callable[[Callable[[], None]], None] | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result

    def hand_lead(self, lead: Callable[[], None]) -> None:
        """Have the next batch of the key led for this entry: by its caller's thread,
        waiting in ``submit``, or on a thread its ``start`` provides."""
        if self.start is None:
            self.leads = True
            self.done.set()
        else:
            self.start(lead)


def wake(entries: list[Entry[T]]) -> None:
    """Tell the entries' callers they are decided: threads through their events, callers
    in an event loop with one call into each loop (waking a loop costs a system call)."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for entry in entries:
        if entry.future is None:
            entry.done.set()
        else:
            loops.setdefault(entry.future.get_loop(), []).append(entry.future)
    for loop, futures in loops.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(_settle, futures)


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # not cancelled: the caller may have gone
            future.set_result(None)


class Batch(list[Entry[T]]):
    """The entries one ``decide`` call decides; ``take_more`` adds those that arrived since
    it was formed (a batch that waited for a lock takes what queued up meanwhile), or only
    those ``accept`` takes (the others stay queued, in order, for the next batch)."""

    def __init__(self, entries: list[Entry[T]], take: Callable[..., list[Entry[T]]]) -> None:
        super().__init__(entries)
        self._take = take

    def take_more(self, accept: Callable[[Entry[T]], bool] | None = None) -> list[Entry[T]]:
        more = self._take(len(self), accept)
        self.extend(more)
        return more


class GroupCommit(Generic[T]):
    """Runs ``decide(entries)`` for batches of entries of one key, one batch at a time per
    key in this process. ``decide`` sets each entry's ``result`` or ``error`` and must
    commit before it returns; an exception it raises becomes every entry's error. It may
    return a follow-up (a callable that must not raise), which runs once the next batch of
    the key has been let go, before the entries' callers are woken: work that needs the
    batch committed but not the key to itself."""

    def __init__(
        self,
        decide: Callable[[Batch[T]], Callable[[], None] | None],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._decide = decide
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, list[Entry[T]]] = {}  # a key here has a leader

    def _take(
        self,
        key: Hashable,
        taken: int,
        accept: Callable[[Entry[T]], bool] | None = None,
    ) -> list[Entry[T]]:
        with self._lock:
            waiting = self._waiting[key]
            room = max(0, self._max_batch - taken)
            if accept is None:
                entries = waiting[:room]
                del waiting[:room]
                return entries
            entries, kept = [], []
            for entry in waiting:
                (entries if len(entries) < room and accept(entry) else kept).append(entry)
            waiting[:] = kept
        return entries

    def decide_here(self, work: T) -> Any:
        """Decide ``work`` alone, at once, on the caller's thread: for a caller inside a
        transaction of its own, which the decision must join and which no other caller's
        work may share. Its result, or raise its error."""
        entry: Entry[T] = Entry(work)
        follow_up = self._decide(Batch([entry], lambda taken, accept=None: []))
        if follow_up is not None:
            follow_up()
        return entry.outcome()

    def submit(self, key: Hashable, work: T) -> Any:
        """Decide ``work`` (batched with others of ``key``); its result, or raise its error."""
        entry: Entry[T] = Entry(work)
        with self._lock:
            waiting = self._waiting.get(key)
            if waiting is None:
                self._waiting[key] = [entry]
                entry.leads = True
            else:
                waiting.append(entry)
        if not entry.leads:
            entry.done.wait()
            if not entry.leads:  # decided by another caller's batch
                return entry.outcome()
        self._lead(key)
        return entry.outcome()

    async def submit_async(
        self, key: Hashable, work: T, *, start: Callable[[Callable[[], None]], None]
    ) -> Any:
        """``submit`` for a caller in an event loop. ``start(fn)`` must run ``fn`` on a
        thread (and return at once): the batches this caller is to lead run there, so they
        go on if the caller is cancelled. A cancelled caller's work is decided all the
        same, as a caller that stopped waiting in ``submit`` would have it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry: Entry[T] = Entry(work, future=future, start=start)
        with self._lock:
            waiting = self._waiting.get(key)
            leads = waiting is None
            if leads:
                self._waiting[key] = [entry]
            else:
                waiting.append(entry)
        if leads:
            start(functools.partial(self._lead, key))
        await future
        return entry.outcome()

    def _lead(self, key: Hashable) -> None:
        batch = Batch(self._take(key, 0), functools.partial(self._take, key))
        heir: Entry[T] | None = None
        follow_up: Callable[[], None] | None = None
        try:
            follow_up = self._decide(batch)
        # Whatever ended the batch (an error, or an exit of the thread) ended its
        # transaction without a commit: it decided nothing, for every caller.
        except BaseException as exc:  # noqa: BLE001
            for entry in batch:
                entry.result, entry.error = None, exc
        finally:
            with self._lock:
                waiting = self._waiting[key]
                if waiting:
                    heir = waiting[0]
                else:
                    del self._waiting[key]
            if heir is not None:
                heir.hand_lead(functools.partial(self._lead, key))
            try:
                if follow_up is not None:
                    follow_up()
            except BaseException as exc:  # noqa: BLE001 - a caller must not wait forever
                for entry in batch:
                    if entry.result is None and entry.error is None:
                        entry.error = exc
            finally:
                wake(batch)  # the first is this thread's own entry, or awaited elsewhere
