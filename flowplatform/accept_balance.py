"""Connections spread evenly over the worker processes of one server.

gunicorn's worker processes listen on one shared socket. A new connection wakes every
process waiting on it, and an asyncio event loop then accepts every connection waiting, up
to the socket's backlog. Clients that connect at once (a fleet of workers starting, a load
balancer filling its pool) mostly land on whichever process woke first, and with keep-alive
they stay there: sixteen benchmark clients were seen split 14/2 and 15/1 over two
processes. The busy process queues their requests while the other idles: the p99 of
worker reports was 36 ms at an even split and 57-68 ms at 14/2 and 15/1
(``bench/README.md``, "Connections over the processes").

``BalancedEventLoop`` accepts one connection per wake-up, and a process that holds more
open connections than another live process of its server leaves a new connection, for
``ACCEPT_DEFER_SECONDS``, to the processes woken with it. If none has taken it by then, it
takes it itself: a stalled process delays new connections a little and loses none.

The counts live in memory that gunicorn's master shares with the processes it forks
(``Board``). The master gives each worker a slot before forking it and frees the slot when
the worker exits (``flowplatform.gunicorn_conf``); a worker writes its count, with the
time, whenever it is woken for a connection and on every tick of its server. A count not
written for ``STALE_SECONDS`` (a process booting, stuck or gone) is not waited for.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACCEPT_DEFER_SECONDS = 0.005
STALE_SECONDS = 1.0
SLOTS = 256
FREE = -1


class Board:
    """Open connections per worker process, one slot each, in shared memory. Only the
    master takes and frees slots; each worker writes only its own."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._counts = multiprocessing.RawArray(ctypes.c_int, [FREE] * slots)
        self._written = multiprocessing.RawArray(ctypes.c_double, slots)

    def take(self) -> int | None:
        """A free slot, now in use (not counted until its worker writes); None if all
        are taken, and that worker then accepts as the event loop does."""
        for slot, count in enumerate(self._counts):
            if count == FREE:
                self._written[slot] = 0.0
                self._counts[slot] = 0
                return slot
        return None

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self._counts[slot] = FREE

    def write(self, slot: int, count: int, now: float | None = None) -> None:
        self._counts[slot] = count
        self._written[slot] = time.monotonic() if now is None else now

    def fewest_elsewhere(self, slot: int, now: float | None = None) -> int | None:
        """The fewest connections another live process holds; None if there is none."""
        now = time.monotonic() if now is None else now
        counts, written = self._counts[:], self._written[:]
        live = [
            count
            for other, count in enumerate(counts)
            if other != slot and count != FREE and now - written[other] < STALE_SECONDS
        ]
        return min(live, default=None)


_board: Board | None = None


def board() -> Board:
    """This server's board: made in gunicorn's master when it forks its first worker, and
    inherited by every worker it forks."""
    global _board
    if _board is None:
        _board = Board()
    return _board


@dataclass
class Balance:
    """One worker process's place on the board; ``connections`` counts what it holds."""

    board: Board
    slot: int
    connections: Callable[[], int]
    left: bool = False

    def write(self) -> None:
        if not self.left:
            self.board.write(self.slot, self.connections())

    def others_less_busy(self) -> bool:
        """Whether another live process holds fewer connections than this one."""
        mine = self.connections()
        self.board.write(self.slot, mine)
        fewest = self.board.fewest_elsewhere(self.slot)
        return fewest is not None and fewest < mine

    def leave(self) -> None:
        """This process no longer accepts (it is shutting down): nobody waits for it. Its
        slot stays taken until the master sees it exit."""
        self.left = True
        self.board.write(self.slot, 0, now=0.0)


class BalancedEventLoop(asyncio.SelectorEventLoop):
    """asyncio's event loop, accepting as the module says once ``balance`` is set (by the
    worker, ``flowplatform.server``); until then, as asyncio's own."""

    balance: Balance | None = None

    def _accept_connection(
        self, protocol_factory: Any, sock: Any, sslcontext: Any = None, server: Any = None,
        backlog: int = 100, *args: Any, **kwargs: Any,
    ) -> None:  # fmt: skip
        if self.balance is None:
            super()._accept_connection(
                protocol_factory, sock, sslcontext, server, backlog, *args, **kwargs
            )
            return
        if self.balance.others_less_busy():
            self._remove_reader(sock.fileno())
            self.call_later(
                ACCEPT_DEFER_SECONDS,
                self._accept_deferred,
                protocol_factory, sock, sslcontext, server, backlog, *args, **kwargs,
            )  # fmt: skip
            return
        super()._accept_connection(protocol_factory, sock, sslcontext, server, 1, *args, **kwargs)

    def _accept_deferred(
        self, protocol_factory: Any, sock: Any, sslcontext: Any, server: Any, backlog: int,
        *args: Any, **kwargs: Any,
    ) -> None:  # fmt: skip
        """Listen again; take a connection still waiting after the deferral."""
        if sock.fileno() == -1 or (server is not None and not server.is_serving()):
            return  # closed meanwhile
        self._add_reader(
            sock.fileno(),
            self._accept_connection,
            protocol_factory, sock, sslcontext, server, backlog, *args, **kwargs,
        )  # fmt: skip
        super()._accept_connection(protocol_factory, sock, sslcontext, server, 1, *args, **kwargs)
