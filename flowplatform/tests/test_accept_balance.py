"""Connections spread over a server's processes (``flowplatform.accept_balance``): the board
of counts, and event loops sharing one listening socket. Through real gunicorn processes:
test_production_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowplatform import accept_balance
from flowplatform.accept_balance import (
    STALE_SECONDS,
    Balance,
    BalancedEventLoop,
    BalancedServer,
    BalancedUVLoop,
    Board,
)

# Both loops the workers may run on.
LOOPS = pytest.mark.parametrize("loop_class", [BalancedEventLoop, BalancedUVLoop])


def test_slots_are_distinct_and_free_again_once_released() -> None:
    board = Board(slots=3)
    slots = [board.take(), board.take(), board.take()]
    assert sorted(slots) == [0, 1, 2]
    assert board.take() is None  # full: that worker accepts as asyncio does
    board.release(1)
    assert board.take() == 1


def test_fewest_elsewhere_counts_only_other_live_processes() -> None:
    board = Board(slots=4)
    mine, other, booting, gone = (board.take() for _ in range(4))
    assert board.fewest_elsewhere(mine) is None  # nobody else has written yet
    board.write(mine, 1, now=100.0)
    board.write(other, 5, now=100.0)
    board.write(gone, 2, now=100.0)
    board.release(gone)
    assert board.fewest_elsewhere(mine, now=100.5) == 5  # not itself, not a freed slot
    board.write(booting, 3, now=100.0 - STALE_SECONDS)
    assert board.fewest_elsewhere(mine, now=100.5) == 5  # not one silent for too long
    assert board.fewest_elsewhere(mine, now=100.0 + STALE_SECONDS) is None


def test_a_process_defers_only_to_one_holding_fewer_and_not_once_it_left() -> None:
    board = Board(slots=2)
    held = {"a": 0, "b": 0}
    a = Balance(board, board.take(), lambda: held["a"])
    b = Balance(board, board.take(), lambda: held["b"])
    a.write()
    b.write()
    assert not a.others_less_busy() and not b.others_less_busy()  # equal: both accept
    held["a"] = 2
    held["b"] = 1
    b.write()
    assert a.others_less_busy()
    assert not b.others_less_busy()
    b.leave()
    b.write()  # a tick after leaving writes nothing
    assert not a.others_less_busy()


@dataclass
class Process:
    """One event loop on a thread, serving on its own handle of the shared socket."""

    loop: asyncio.AbstractEventLoop
    connections: set = field(default_factory=set)
    server: Any = None

    @property
    def deferrals(self) -> int:
        return self.server.deferrals


class Holder(asyncio.Protocol):
    def __init__(self, held: set) -> None:
        self.held = held
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.held.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.held.discard(self.transport)


@contextlib.contextmanager
def processes(
    count: int, loop_class: type, *, board: Board | None, backlog: int = 128
) -> Iterator[
    tuple[tuple[str, int], list[Process]]
]:  # fmt: skip
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    started, threads, serving = [], [], []
    for _ in range(count):
        loop = loop_class()
        process = Process(loop)
        if board is not None:
            loop.balance = Balance(board, board.take(), lambda p=process: len(p.connections))
            loop.balance.write()
        ready = threading.Event()

        async def serve(p: Process = process, ready: threading.Event = ready) -> None:
            sock = socket.socket(fileno=os.dup(listener.fileno()))
            p.server = await p.loop.create_server(
                lambda: Holder(p.connections), sock=sock, backlog=backlog
            )
            serving.append(p.server)
            ready.set()
            while p.server.is_serving():
                await asyncio.sleep(0.05)
                if p.loop.balance is not None:
                    p.loop.balance.write()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        assert ready.wait(5)
        started.append(process)
        threads.append(thread)
    try:
        yield listener.getsockname(), started
    finally:
        for process in started:
            process.loop.call_soon_threadsafe(process.server.close)
        for thread in threads:
            thread.join(5)
        for process in started:
            for transport in list(process.connections):
                transport.abort()
            process.loop.close()
        listener.close()


def connect_all(address: tuple[str, int], count: int) -> list[socket.socket]:
    clients = [socket.create_connection(address) for _ in range(count)]
    return clients


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@LOOPS
@pytest.mark.parametrize("count", [16, 64])
def test_connections_are_spread_evenly(count: int, loop_class: type, monkeypatch) -> None:  # noqa: ANN001
    """Each connection is left to the process holding fewer. They arrive one after another
    here, so the split does not depend on how the machine schedules the two loops; bursts
    through real server processes: test_production_e2e.py."""
    monkeypatch.setattr(accept_balance, "ACCEPT_DEFER_SECONDS", 0.05)
    board = Board(slots=8)
    with processes(2, loop_class, board=board) as (address, (a, b)):
        clients = []
        try:
            for arrived in range(1, count + 1):
                clients.append(socket.create_connection(address))
                wait_for(lambda n=arrived: len(a.connections) + len(b.connections) == n)
            assert abs(len(a.connections) - len(b.connections)) <= 2, (
                len(a.connections),
                len(b.connections),
            )
        finally:
            for client in clients:
                client.close()


@LOOPS
def test_a_process_that_does_not_accept_delays_one_connection_and_loses_none(
    loop_class: type,
) -> None:
    board = Board(slots=8)
    stuck = board.take()
    with processes(1, loop_class, board=board) as (address, (only,)):
        clients = [socket.create_connection(address)]
        wait_for(lambda: len(only.connections) == 1)
        # Another live process holds no connection, but never accepts.
        keep_live = threading.Event()

        def stuck_writes() -> None:
            board.write(stuck, 0)
            while not keep_live.wait(0.2):  # live, but it never accepts
                board.write(stuck, 0)

        writer = threading.Thread(target=stuck_writes, daemon=True)
        writer.start()
        try:
            time.sleep(0.1)
            clients += connect_all(address, 5)
            wait_for(lambda: len(only.connections) == 6)
            # The first waited for the other process; the rest did not wait for it again
            # (unless it wrote meanwhile, as it does every 0.2 s).
            assert 1 <= only.deferrals <= 2
        finally:
            keep_live.set()
            writer.join(5)
            for client in clients:
                client.close()


@LOOPS
def test_a_server_closed_while_deferring_stops_accepting_quietly(loop_class: type) -> None:
    board = Board(slots=8)
    idle = board.take()
    errors: list[dict] = []
    with processes(1, loop_class, board=board) as (address, (only,)):
        only.loop.set_exception_handler(lambda loop, context: errors.append(context))
        first = socket.create_connection(address)
        wait_for(lambda: len(only.connections) == 1)
        board.write(idle, 0)
        second = socket.create_connection(address)  # deferred: the idle one holds fewer
        only.loop.call_soon_threadsafe(only.server.close)
        wait_for(lambda: not only.server.is_serving())
        time.sleep(accept_balance.ACCEPT_DEFER_SECONDS * 4)
        assert len(only.connections) == 1
        assert errors == []
        first.close()
        second.close()


@LOOPS
def test_without_a_board_the_loop_serves_as_its_own(loop_class: type) -> None:
    with processes(1, loop_class, board=None) as (address, (only,)):
        clients = connect_all(address, 10)
        try:
            wait_for(lambda: len(only.connections) == 10)
            assert not isinstance(only.server, BalancedServer)
        finally:
            for client in clients:
                client.close()
