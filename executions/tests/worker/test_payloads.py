"""Parsing what the server sends and shaping what the worker reports."""

from __future__ import annotations

import pytest

from executions.worker.payloads import (
    DEFAULT_LEASE_SECONDS,
    MAX_TRACEBACK_CHARS,
    ClaimedTask,
    HeartbeatAnswer,
    PayloadError,
    TaskError,
    TaskOutputReport,
    truncate_middle,
)

MINIMAL = {
    "id": "te-1",
    "flow_execution_id": "fe-1",
    "task_name": "fetch",
    "task_execution_idx": 2,
    "task_executor_name": "http_request",
}


def test_claimed_task_defaults_and_tolerates_extra_fields() -> None:
    task = ClaimedTask.from_json({**MINIMAL, "new_server_field": 1, "timeout_seconds": 0})
    assert (task.lease_seconds, task.attempt, task.timeout_seconds) == (
        DEFAULT_LEASE_SECONDS,
        1,
        None,
    )
    assert task.input is None
    assert task.describe() == "task=fetch flow_execution=fe-1 idx=2"


@pytest.mark.parametrize(
    "broken",
    [
        {k: v for k, v in MINIMAL.items() if k != "task_name"},
        {**MINIMAL, "task_execution_idx": True},
        {**MINIMAL, "id": 5},
        ["not", "an", "object"],
    ],
)
def test_claimed_task_rejects_what_it_cannot_run(broken: object) -> None:
    with pytest.raises(PayloadError):
        ClaimedTask.from_json(broken)


def test_heartbeat_answer() -> None:
    assert HeartbeatAnswer.from_json({"cancel_requested": True}).cancel_requested
    assert not HeartbeatAnswer.from_json({"lease_expires_at": "x"}).cancel_requested


def test_tracebacks_are_truncated_keeping_both_ends() -> None:
    traceback = "Traceback (most recent call last):\n" + "x" * 50_000 + "\nValueError: last line"
    sent = TaskError(message="m", type="ValueError", traceback=traceback).to_json()
    assert len(sent["traceback"]) == MAX_TRACEBACK_CHARS
    assert sent["traceback"].startswith("Traceback (most recent call last):")
    assert sent["traceback"].endswith("ValueError: last line")
    assert "characters truncated" in sent["traceback"]
    assert truncate_middle("short", 10) == "short"


def test_task_output_report_shape() -> None:
    body = TaskOutputReport("fe-1", "fetch", "completed", summary={"status_code": 200}).to_json()
    assert body == {
        "flow_execution_id": "fe-1",
        "task_name": "fetch",
        "summary": {"status_code": 200},
        "output": None,
        "tags": None,
        "status": "completed",
    }
