"""The worker end to end against the in-memory fake API (real HTTP, real threads)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from executions.worker.config import WorkerConfig
from executions.worker.executors import builtin_registry
from executions.worker.runner import Worker

from .fake_api import KEY, FakeApi, fake_api

ALLOWED = ("executions.worker.examples:add", "executions.worker.examples:fail")
# One request per task after the claim: the claim makes the task (and its output) running,
# the report carries the status and the output, and an empty summary adds nothing to say.
# The status joins the flow execution's history later, in a batch (``history.py``).
FULL_RUN = [("claim", ""), ("report", "completed"), ("status", "completed")]
# A summary (a failure's error, a cancellation's reason) is posted after the report.
WITH_SUMMARY = [
    ("claim", ""),
    ("report", "{status}"),
    ("output", "{status}"),
    ("status", "{status}"),
]


def with_summary(status: str) -> list[tuple[str, str]]:
    return [(kind, value.format(status=status)) for kind, value in WITH_SUMMARY]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as api:
        yield api


class Running:
    """A worker running in a background thread (no signal handlers there)."""

    def __init__(self, api: FakeApi, **overrides: Any) -> None:
        settings: dict[str, Any] = {
            "url": api.url,
            "key": KEY,
            "worker_id": "w-test",
            "concurrency": 2,
            "wait_seconds": 0.1,
            "shutdown_grace_seconds": 0.3,
            "python_callables": ALLOWED,
        }
        settings.update(overrides)
        self.worker = Worker(WorkerConfig(**settings), registry=builtin_registry())
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.exit_code = self.worker.run(install_signal_handlers=False)

    def stop(self, timeout: float = 5.0) -> int | None:
        self.worker.request_shutdown()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        return self.exit_code


@contextmanager
def running(api: FakeApi, **overrides: Any) -> Iterator[Running]:
    handle = Running(api, **overrides)
    handle.thread.start()
    try:
        yield handle
    finally:
        if handle.thread.is_alive():
            handle.worker.request_shutdown(immediate=True)
            handle.thread.join(2.0)


def reported(api: FakeApi, name: str) -> dict[str, Any]:
    (report,) = [r for r in api.reports if r["task_name"] == name]
    return report


def protocol(api: FakeApi, name: str) -> list[tuple[str, str]]:
    """The calls about ``name`` other than heartbeats, in order."""
    return [event for event in api.events_of(name) if event[0] != "heartbeat"]


def test_claimed_tasks_run_and_report_their_terminal_state(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowplatform.worker")
    api.add_task("a", "noop", {"output": {"n": 1}})
    api.add_task("b", "transform", {"template": {"title": "hi"}})
    api.add_task(
        "c", "python", {"callable": "executions.worker.examples:add", "kwargs": {"a": 1, "b": 2}}
    )
    with running(api) as handle:
        assert api.wait_for(lambda: all(protocol(api, n) == FULL_RUN for n in "abc"))
        assert handle.stop() == 0
    assert [reported(api, n)["output"] for n in "abc"] == [{"n": 1}, {"title": "hi"}, 3]
    first = reported(api, "a")
    assert first["error"] is None and first["worker_id"] == "w-test"
    assert first["flow_execution_id"] and first["task_execution_idx"] == 0
    assert api.outputs == []  # no summary to add to what the reports said
    assert sorted(s["task_name"] for s in api.statuses) == ["a", "b", "c"]
    assert {c["limit"] for c in api.claims} <= {1, 2}
    assert set(api.claims[0]["executors"]) >= {"noop", "http_request", "python", "transform"}
    assert "human_review" not in api.claims[0]["executors"]
    assert handle.worker.counts == {"completed": 3}
    finished = [r.getMessage() for r in caplog.records if "task finished" in r.getMessage()]
    assert len(finished) == 3
    assert any("task=a" in m and "status=completed" in m and "duration_ms=" in m for m in finished)


def test_failures_are_reported_with_type_message_and_traceback(api: FakeApi) -> None:
    api.add_task(
        "boom",
        "python",
        {"callable": "executions.worker.examples:fail", "kwargs": {"message": "kaput"}},
    )
    api.add_task("bad-params", "http_request", {"method": "GET"})
    api.add_task("not-allowed", "python", {"callable": "os:getcwd"})
    with running(api, concurrency=3) as handle:
        names = ("boom", "bad-params", "not-allowed")
        assert api.wait_for(lambda: all(("status", "failed") in protocol(api, n) for n in names))
        handle.stop()
    error = reported(api, "boom")["error"]
    assert (error["type"], error["message"]) == ("RuntimeError", "kaput")
    assert "examples.py" in error["traceback"] and "RuntimeError: kaput" in error["traceback"]
    assert reported(api, "boom")["output"] is None
    assert reported(api, "bad-params")["error"]["type"] == "InvalidParameters"
    assert reported(api, "not-allowed")["error"]["type"] == "CallableNotAllowed"
    assert protocol(api, "boom") == with_summary("failed")
    (output,) = [o for o in api.outputs if o["task_name"] == "boom"]
    assert output["summary"] == {"error": {"type": "RuntimeError", "message": "kaput"}}


def test_timeout_fails_the_task(api: FakeApi) -> None:
    api.add_task("slow", "noop", {"sleep_seconds": 10}, timeout_seconds=0.2)
    started = time.monotonic()
    with running(api) as handle:
        assert api.wait_for(lambda: ("status", "failed") in protocol(api, "slow"))
        handle.stop()
    assert time.monotonic() - started < 5  # not the 10 s sleep (loose: shared CI)
    error = reported(api, "slow")["error"]
    assert error["type"] == "Timeout"
    assert "Stack of the task at its timeout" in error["traceback"]


def test_heartbeat_conflict_abandons_the_task_without_reporting(api: FakeApi) -> None:
    task_id = api.add_task("lost", "noop", {"sleep_seconds": 10}, lease_seconds=0.15)
    api.lose_lease.add(task_id)
    with running(api) as handle:
        assert api.wait_for(lambda: handle.worker.counts.get("abandoned") == 1)
        handle.stop()
    assert task_id in api.heartbeats
    assert protocol(api, "lost") == [("claim", "")]
    assert api.reports == [] and api.outputs == [] and api.releases == []


def test_cancel_requested_reports_cancelled(api: FakeApi) -> None:
    task_id = api.add_task("stop-me", "noop", {"sleep_seconds": 10}, lease_seconds=0.15)
    api.cancel.add(task_id)
    with running(api) as handle:
        assert api.wait_for(lambda: ("status", "cancelled") in protocol(api, "stop-me"))
        handle.stop()
    report = reported(api, "stop-me")
    assert (report["status"], report["output"], report["error"]) == ("cancelled", None, None)
    assert protocol(api, "stop-me") == with_summary("cancelled")
    (output,) = api.outputs
    assert output["summary"] == {"reason": "cancel requested"}


def test_report_conflict_drops_the_result(api: FakeApi) -> None:
    api.add_task("late", "noop", {"output": 1})
    api.reject_reports.add("late")
    with running(api) as handle:
        assert api.wait_for(lambda: handle.worker.counts.get("dropped") == 1)
        handle.stop()
    # one report, never retried, and nothing posted after the 409
    assert protocol(api, "late") == [("claim", ""), ("report", "completed")]


def test_shutdown_releases_a_long_task_after_the_grace_and_claims_nothing_more(
    api: FakeApi,
) -> None:
    long_id = api.add_task("long", "noop", {"sleep_seconds": 10})
    with running(api, concurrency=1, shutdown_grace_seconds=0.3) as handle:
        assert api.wait_for(lambda: handle.worker.running_count == 1)
        api.add_task("next", "noop", {})  # must stay queued: no free slot, then shutdown
        claims_before = len(api.claims)
        asked = time.monotonic()
        assert handle.stop() == 0
        elapsed = time.monotonic() - asked
    assert 0.3 <= elapsed < 5  # the grace, not the 10 s sleep
    assert api.releases == [long_id]
    assert protocol(api, "long") == [("claim", ""), ("release", "")]
    assert len(api.claims) == claims_before
    assert [t["task_name"] for t in api.queue] == ["next"]
    assert handle.worker.counts == {"released": 1}


def test_shutdown_lets_a_short_task_finish(api: FakeApi) -> None:
    api.add_task("short", "noop", {"sleep_seconds": 0.3, "output": "done"})
    with running(api, shutdown_grace_seconds=5) as handle:
        assert api.wait_for(lambda: handle.worker.running_count == 1)
        assert handle.stop() == 0
    assert protocol(api, "short") == FULL_RUN
    assert api.releases == []


def test_a_refused_key_stops_the_worker_with_exit_code_1(api: FakeApi) -> None:
    with running(api, key="wrong-key") as handle:
        handle.thread.join(5.0)
        assert handle.exit_code == 1


def test_worker_refuses_executors_it_cannot_run(api: FakeApi) -> None:
    for executors in (("noop", "no_such"), ("human_review",)):
        with pytest.raises(ValueError, match="cannot serve executors"):
            Worker(WorkerConfig(url=api.url, key=KEY, executors=executors))
