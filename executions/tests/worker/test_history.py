"""The worker's status history: batched per flow execution, never blocking a task."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from executions.worker.client import ApiError
from executions.worker.history import MAX_BATCH, StatusHistory


class RecordingClient:
    def __init__(self, *, failing: set[str] = frozenset()) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.failing = failing
        self.posted = threading.Event()

    def add_task_statuses(self, flow_execution_id: str, statuses: Any) -> list[Any]:
        if flow_execution_id in self.failing:
            raise ApiError("503 the database is unavailable")
        self.calls.append((flow_execution_id, [(s.task_name, s.status) for s in statuses]))
        self.posted.set()
        return []


def test_statuses_are_posted_in_order_one_request_per_flow_execution_and_hundred():
    client = RecordingClient()
    history = StatusHistory(client)  # type: ignore[arg-type]
    for i in range(MAX_BATCH + 50):
        history.add("fe-a", f"t{i}", "completed")
    history.add("fe-b", "x", "failed")
    assert client.calls == []  # nothing is sent until a flush
    assert history.flush() == MAX_BATCH + 51
    assert [(fe, len(items)) for fe, items in client.calls] == [
        ("fe-a", MAX_BATCH),
        ("fe-a", 50),
        ("fe-b", 1),
    ]
    sent_a = [name for fe, items in client.calls if fe == "fe-a" for name, _ in items]
    assert sent_a == [f"t{i}" for i in range(MAX_BATCH + 50)]
    assert history.flush() == 0 and len(client.calls) == 3  # each status once


def test_the_background_thread_flushes_and_close_sends_what_is_left():
    client = RecordingClient()
    history = StatusHistory(client, flush_seconds=0.05)  # type: ignore[arg-type]
    history.start()
    try:
        history.add("fe-a", "a", "completed")
        assert client.posted.wait(5)
        client.posted.clear()
    finally:
        history.close(timeout=5)
    history.add("fe-a", "late", "completed")  # after close: sent by an explicit flush only
    assert client.calls == [("fe-a", [("a", "completed")])]
    history = StatusHistory(client, flush_seconds=3600)  # type: ignore[arg-type]
    history.start()
    history.add("fe-b", "b", "cancelled")
    began = time.monotonic()
    history.close(timeout=5)
    assert time.monotonic() - began < 2  # close does not wait for the next window
    assert client.calls[-1] == ("fe-b", [("b", "cancelled")])


def test_a_failed_post_is_logged_and_dropped_and_others_still_go(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="flowplatform.worker")
    client = RecordingClient(failing={"fe-down"})
    history = StatusHistory(client)  # type: ignore[arg-type]
    history.add("fe-down", "a", "completed")
    history.add("fe-up", "b", "completed")
    assert history.flush() == 1
    assert client.calls == [("fe-up", [("b", "completed")])]
    assert "could not post 1 status(es)" in caplog.text
    assert history.flush() == 0  # dropped, not retried forever
