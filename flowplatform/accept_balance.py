"""Connections spread evenly over the worker processes of one server.

gunicorn's worker processes listen on one shared socket. A new connection wakes every
process waiting on it, and an asyncio event loop then accepts every connection waiting, up
to the socket's backlog. Clients that connect at once (a fleet of workers starting, a load
balancer filling its pool) mostly land on whichever process woke first, and with keep-alive
they stay there: sixteen benchmark clients were seen split 14/2 and 15/1 over two
processes. The busy process queues their requests while the other idles: the p99 of
worker reports was 36 ms at an even split and 57-68 ms at 14/2 and 15/1
(``bench/README.md``, "Connections over the processes").

The workers' event loop (``new_event_loop``: uvloop's, or asyncio's) serves the listening
socket through a ``BalancedServer``, which accepts one connection per wake-up, and a process
that holds more open connections than another live process of its server leaves a new
connection, for ``ACCEPT_DEFER_SECONDS``, to the processes woken with it. If none has taken
it by then, it takes it itself, and does not wait again for those that have not run
meanwhile until they do (they write their count whenever they run: see below). A busy or
stalled process delays new connections by one deferral and loses none. It uses only the
loop's public interface (readers, timers, ``connect_accepted_socket``).

The counts live in memory that gunicorn's master shares with the processes it forks
(``Board``). The master gives each worker a slot before forking it and frees the slot when
the worker exits (``flowplatform.gunicorn_conf``); a worker writes its count, with the
time, whenever it is woken for a connection and on every tick of its server. A count not
written for ``STALE_SECONDS`` (a process booting, stuck or gone) is not waited for.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in requirements.txt
    uvloop = None

logger = logging.getLogger(__name__)

ACCEPT_DEFER_SECONDS = 0.02
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

    def others(self, slot: int, now: float | None = None) -> list[tuple[int, int, float]]:
        """``(slot, connections, written)`` of every other live process."""
        now = time.monotonic() if now is None else now
        counts, written = self._counts[:], self._written[:]
        return [
            (other, count, written[other])
            for other, count in enumerate(counts)
            if other != slot and count != FREE and now - written[other] < STALE_SECONDS
        ]

    def fewest_elsewhere(self, slot: int, now: float | None = None) -> int | None:
        """The fewest connections another live process holds; None if there is none."""
        return min((count for _, count, _ in self.others(slot, now)), default=None)


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
    # Processes a connection was left to in vain, and when they had last written then.
    passed_over: dict[int, float] = field(default_factory=dict)

    def write(self) -> None:
        if not self.left:
            self.board.write(self.slot, self.connections())

    def others_less_busy(self, accepting: int = 0) -> bool:
        """Whether another live process, not passed over, holds fewer connections than
        this one (those it holds, and the ``accepting`` it accepted and is still setting
        up)."""
        mine = self.connections() + accepting
        self.board.write(self.slot, mine)
        return any(count < mine for _, count, _ in self._candidates())

    def pass_over_silent_since(self, since: float) -> None:
        """A connection left to the others since ``since`` (``time.monotonic()``) still
        waited: do not wait again for those that have not written since then (they are
        busy, or stuck) before they write anew."""
        self.passed_over = {
            slot: written for slot, _, written in self.board.others(self.slot) if written < since
        }

    def _candidates(self) -> list[tuple[int, int, float]]:
        return [
            other
            for other in self.board.others(self.slot)
            if self.passed_over.get(other[0]) != other[2]
        ]

    def leave(self) -> None:
        """This process no longer accepts (it is shutting down): nobody waits for it. Its
        slot stays taken until the master sees it exit."""
        self.left = True
        self.board.write(self.slot, 0, now=0.0)


class BalancedServer:
    """Serves a listening socket as ``loop.create_server(sock=...)`` does, accepting as the
    module says: one connection per wake-up, none while another process holds fewer. What
    uvicorn uses of a server: ``close()`` and ``wait_closed()``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol_factory: Any, sock: Any, balance: Balance
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._fd = sock.fileno()
        self._balance = balance
        self._serving = True
        self._timer: asyncio.TimerHandle | None = None
        self._paused_at = 0.0
        self._accepting = 0  # accepted, still being set up: not yet among the connections
        self.deferrals = 0  # connections left to another process first
        sock.setblocking(False)
        loop.add_reader(self._fd, self._readable)

    @property
    def sockets(self) -> tuple[Any, ...]:
        return (self._sock,) if self._serving else ()

    def is_serving(self) -> bool:
        return self._serving

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def close(self) -> None:
        """Stop listening and close the socket; open connections are their owner's."""
        if not self._serving:
            return
        self._serving = False
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._fd)
        self._sock.close()

    async def wait_closed(self) -> None:
        return None

    def _readable(self) -> None:
        if self._balance.others_less_busy(self._accepting):
            self.deferrals += 1
            self._pause(ACCEPT_DEFER_SECONDS)
            return
        self._accept()

    def _pause(self, seconds: float) -> None:
        self._paused_at = time.monotonic()
        self._loop.remove_reader(self._fd)
        self._timer = self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        """Listen again, and take a connection that waited through the pause: the processes
        it was left to are not waited for again until they are seen running."""
        self._timer = None
        if self._serving:
            self._loop.add_reader(self._fd, self._readable)
            if self._accept():
                self._balance.pass_over_silent_since(self._paused_at)

    def _accept(self) -> bool:
        """Accept a waiting connection; False if there was none."""
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False  # another process took it
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            # Out of file descriptors or memory: the socket stays readable, so listening
            # on would spin. Pause as asyncio does, and leave connections to the others.
            logger.error("accepting a connection failed (%s); retrying in 1 s", exc)
            self._pause(1.0)
            return False
        conn.setblocking(False)
        self._accepting += 1
        self._loop.create_task(self._connect(conn))
        return True

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except Exception:  # noqa: BLE001 - one connection failed, not the server
            logger.exception("setting up an accepted connection failed")
            conn.close()
        finally:
            self._accepting -= 1


class Balancing:
    """An event loop whose ``create_server(sock=...)`` accepts as the module says once
    ``balance`` is set (by the worker, ``flowplatform.server``), and as the loop's own until
    then or for TLS."""

    balance: Balance | None = None

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Any, host: Any = None, port: Any = None, *,
        sock: Any = None, ssl: Any = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        if self.balance is None or sock is None or ssl is not None:
            return await super().create_server(  # type: ignore[misc]
                protocol_factory, host, port, sock=sock, ssl=ssl, **kwargs
            )
        return BalancedServer(self, protocol_factory, sock, self.balance)  # type: ignore[arg-type]


class BalancedEventLoop(Balancing, asyncio.SelectorEventLoop):
    """asyncio's event loop, balancing."""


if uvloop is not None:

    class BalancedUVLoop(Balancing, uvloop.Loop):  # type: ignore[misc, name-defined]
        """uvloop's event loop, balancing."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The workers' event loop (uvicorn's ``loop`` setting): uvloop's when installed, as
    uvicorn's ``auto`` picks, else asyncio's; balancing either way."""
    if uvloop is not None:
        return BalancedUVLoop()
    return BalancedEventLoop()
