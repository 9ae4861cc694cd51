"""The background sender used for network layers: never blocks, bounded, quiet, self-healing."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from realtime.sender import BackgroundSender


class FakeLayer:
    """Records group_send calls; can fail or hang on demand."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.fail = False
        self.hang = False
        self.threads: set[str] = set()

    async def group_send(self, group: str, message: dict) -> None:
        self.threads.add(threading.current_thread().name)
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise ConnectionRefusedError("Connection refused")
        self.sent.append((group, message))


def _batch(*ids: int, group: str = "flow.x") -> list[tuple[str, dict]]:
    return [(group, {"type": "events.batch", "events": [{"id": i} for i in ids]})]


def _warnings(caplog) -> list[str]:  # noqa: ANN001
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def make_sender():
    senders = []

    def make(**kwargs) -> BackgroundSender:  # noqa: ANN003
        sender = BackgroundSender(**kwargs)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.stop(timeout=1)


def test_batches_are_sent_in_order_from_one_background_thread(make_sender):
    layer = FakeLayer()
    sender = make_sender()
    for i in range(1, 6):
        assert sender.submit(layer, _batch(i)) is True
    assert sender.flush(5)
    assert [m["events"][0]["id"] for _, m in layer.sent] == [1, 2, 3, 4, 5]
    assert layer.threads == {"realtime-sender"}


def test_failures_are_logged_once_per_interval_then_recovery_asks_groups_to_resync(
    make_sender, caplog
):
    layer = FakeLayer()
    layer.fail = True
    sender = make_sender(log_interval=60, max_backoff=0.05)
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        for i in range(10, 30):
            sender.submit(layer, _batch(i, group=f"flow.{i % 2}"))
        assert sender.flush(5)
        failures = [m for m in _warnings(caplog) if "unavailable" in m]
        assert len(failures) == 1
        assert "ConnectionRefusedError" in failures[0]

        layer.fail = False
        time.sleep(0.1)  # past the breaker's back-off
        sender.submit(layer, _batch(99, group="flow.0"))
        assert sender.flush(5)
    assert layer.sent[0] == ("flow.0", {"type": "events.batch", "events": [{"id": 99}]})
    resyncs = sorted(layer.sent[1:])
    assert resyncs == [
        ("flow.0", {"type": "events.resync", "since": 9}),
        ("flow.1", {"type": "events.resync", "since": 9}),
    ]
    assert any("reachable again" in m for m in _warnings(caplog))


def test_a_hanging_layer_costs_the_caller_nothing(make_sender, caplog):
    layer = FakeLayer()
    layer.hang = True
    sender = make_sender(send_timeout=0.2, log_interval=60)
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        started = time.monotonic()
        for i in range(200):
            sender.submit(layer, _batch(i))
        submitting = time.monotonic() - started
        assert sender.flush(5)  # one timeout, then the breaker drops the rest at once
    assert submitting < 1.0, submitting
    assert layer.sent == []
    assert len([m for m in _warnings(caplog) if "unavailable" in m]) == 1


def test_a_full_queue_drops_instead_of_blocking(make_sender, caplog):
    layer = FakeLayer()
    layer.hang = True
    sender = make_sender(maxsize=2, send_timeout=30, log_interval=60)
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        accepted = [sender.submit(layer, _batch(i)) for i in range(10)]
    # the first is taken by the thread (in flight), two wait in the queue, the rest drop
    assert accepted.count(False) >= 7
    assert any("queue full" in m for m in _warnings(caplog))


def test_a_batch_the_layer_cannot_encode_becomes_a_resync_without_tripping_the_breaker(
    make_sender, caplog
):
    class PickyLayer(FakeLayer):
        async def group_send(self, group: str, message: dict) -> None:
            if any(e.get("wide") for e in message.get("events", ())):
                raise OverflowError("Integer value out of range")  # what msgpack raises
            await super().group_send(group, message)

    layer = PickyLayer()
    sender = make_sender()
    wide = [("flow.x", {"type": "events.batch", "events": [{"id": 7, "wide": True}]})]
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        sender.submit(layer, wide)
        sender.submit(layer, _batch(8))  # right after: not dropped by a breaker
        assert sender.flush(5)
    assert layer.sent == [
        ("flow.x", {"type": "events.resync", "since": 6}),
        ("flow.x", {"type": "events.batch", "events": [{"id": 8}]}),
    ]
    assert not [m for m in _warnings(caplog) if "unavailable" in m]
