"""The API client's retry policy and error mapping, against a real scripted HTTP server.

Sleeps are recorded instead of slept, so the backoff schedule is visible and tests are fast.
"""

from __future__ import annotations

import dataclasses
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from executions.worker.client import (
    ApiClient,
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    LeaseLost,
    NotFound,
    RetryPolicy,
    parse_retry_after,
)
from executions.worker.payloads import TaskError, TaskExecutionReport

from .servers import Scripted, scripted

REPORT = TaskExecutionReport(
    flow_execution_id="fe-1",
    task_name="fetch",
    task_execution_idx=0,
    status="failed",
    worker_id="w-1",
    error=TaskError(message="boom", type="RuntimeError", traceback="Traceback..."),
)
CONFLICT = {
    "error": {"message": "lease lost", "code": "conflict", "details": []},
    "request_id": "01J0000000000000000000000",
}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(url: str, sleeps: Sleeps, **policy: float) -> ApiClient:
    retry = RetryPolicy(**policy)  # type: ignore[arg-type]
    return ApiClient(url, "secret", retry=retry, sleep=sleeps, rng=random.Random(1))


@pytest.fixture
def closed_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more: connections are refused
    yield port


def test_success_sends_key_and_body(sleeps: Sleeps) -> None:
    with scripted(Scripted(201, {"id": "te-1"})) as (url, requests):
        with make_client(url, sleeps) as client:
            assert client.report_task_execution(REPORT) == []  # claimed nothing: asked none
    (request,) = requests
    assert "claim" not in request.body
    assert (request.method, request.path) == ("POST", "/api/task-executions")
    assert request.headers["authorization"] == "Bearer secret"
    assert request.body["error"] == {
        "message": "boom",
        "type": "RuntimeError",
        "traceback": "Traceback...",
    }
    assert request.body["status"] == "failed" and request.body["worker_id"] == "w-1"
    assert sleeps == []


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_retries_retryable_statuses_with_growing_backoff(status: int, sleeps: Sleeps) -> None:
    script = [Scripted(status, {}), Scripted(status, {}), Scripted(200, {"ok": True})]
    with scripted(*script) as (url, requests):
        with make_client(url, sleeps, base_delay_seconds=0.5, jitter=0.5) as client:
            assert client.request("POST", "/api/task-outputs", json={}) == {"ok": True}
    assert len(requests) == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.5


def test_retries_transport_errors(sleeps: Sleeps) -> None:
    with scripted(Scripted(drop=True), Scripted(200, {"ok": 1})) as (url, requests):
        with make_client(url, sleeps) as client:
            assert client.request("GET", "/api/task-executors") == {"ok": 1}
    assert len(requests) == 2 and len(sleeps) == 1


def test_connection_refused_is_retried_then_unavailable(sleeps: Sleeps, closed_port: int) -> None:
    with make_client(f"http://127.0.0.1:{closed_port}", sleeps, max_attempts=3) as client:
        with pytest.raises(ApiUnavailable, match="after 3 attempts"):
            client.release("te-1", worker_id="w-1")
    assert len(sleeps) == 2


def test_retry_after_is_honoured(sleeps: Sleeps) -> None:
    script = [Scripted(429, {}, headers={"Retry-After": "3"}), Scripted(200, {})]
    with scripted(*script) as (url, requests):
        with make_client(url, sleeps) as client:
            client.request("POST", "/api/task-outputs", json={})
    assert sleeps == [3.0]
    assert parse_retry_after("bogus") is None
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 28 <= (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 30


def test_gives_up_after_max_attempts(sleeps: Sleeps) -> None:
    with scripted(Scripted(503, {"error": {"message": "down", "code": "x"}})) as (url, requests):
        with make_client(url, sleeps, max_attempts=3) as client:
            with pytest.raises(ApiUnavailable) as info:
                client.request("POST", "/api/task-outputs", json={})
    assert len(requests) == 3 and len(sleeps) == 2
    assert info.value.status_code == 503


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ApiError),
        (409, LeaseLost),
        (404, NotFound),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (422, ApiError),
        (500, ApiError),
    ],
)
def test_other_errors_are_not_retried(status: int, kind: type[ApiError], sleeps: Sleeps) -> None:
    with scripted(Scripted(status, CONFLICT), Scripted(200, {})) as (url, requests):
        with make_client(url, sleeps) as client:
            with pytest.raises(kind) as info:
                client.report_task_execution(REPORT)
    assert type(info.value) is kind
    assert len(requests) == 1 and sleeps == []
    assert info.value.status_code == status
    assert info.value.code == "conflict" and info.value.message == "lease lost"
    assert info.value.request_id == CONFLICT["request_id"]


def test_claim_parses_tasks_and_outlasts_the_long_poll(sleeps: Sleeps) -> None:
    task = {
        "id": "te-1",
        "flow_execution_id": "fe-1",
        "task_name": "a",
        "task_execution_idx": 0,
        "task_executor_name": "noop",
        "input": {"x": 1},
        "lease_seconds": 30,
        "attempt": 2,
        "max_attempts": 3,
        "timeout_seconds": None,
        "extra_field": "ignored",
    }
    malformed = {"id": "te-2", "task_name": "b"}
    script = [Scripted(200, {"task_executions": [task, malformed]}), Scripted(200, {})]
    with scripted(*script) as (url, requests):
        with make_client(url, sleeps) as client:
            claimed = client.claim(worker_id="w-1", executors=["noop"], limit=2, wait_seconds=20)
    assert [t.id for t in claimed] == ["te-1"]
    assert (claimed[0].input, claimed[0].attempt, claimed[0].lease_seconds) == ({"x": 1}, 2, 30)
    assert requests[0].body == {
        "worker_id": "w-1",
        "executors": ["noop"],
        "limit": 2,
        "wait_seconds": 20,
    }
    # the malformed task is given back instead of waiting for its lease to expire
    assert (requests[1].path, requests[1].body) == (
        "/api/task-executions/te-2/release",
        {"worker_id": "w-1"},
    )


def test_a_report_can_claim_the_next_task(sleeps: Sleeps) -> None:
    task = {
        "id": "te-9",
        "flow_execution_id": "fe-1",
        "task_name": "next",
        "task_execution_idx": 0,
        "task_executor_name": "noop",
        "input": None,
        "lease_seconds": 30,
    }
    malformed = {"id": "te-10"}
    report = dataclasses.replace(REPORT, claim_executors=("noop", "python"))
    answer = {"id": "te-1", "claimed": [task, malformed]}
    with scripted(Scripted(200, answer), Scripted(200, {})) as (url, requests):
        with make_client(url, sleeps) as client:
            claimed = client.report_task_execution(report)
    assert [t.id for t in claimed] == ["te-9"]
    assert requests[0].body["claim"] == {"executors": ["noop", "python"], "limit": 1}
    assert (requests[1].path, requests[1].body) == (
        "/api/task-executions/te-10/release",
        {"worker_id": "w-1"},
    )


def test_claim_read_timeout_exceeds_wait_seconds() -> None:
    """A long-poll must never be cut short by the client's own read timeout."""
    seen = {}

    class Recorder(ApiClient):
        def request(self, method, path, *, json=None, timeout=None, retry=None):  # type: ignore[no-untyped-def]
            seen["read"] = timeout.read
            return {"task_executions": []}

    client = Recorder("http://127.0.0.1:1", "k", timeout_seconds=5)
    assert client.claim(worker_id="w", executors=["noop"], limit=1, wait_seconds=30) == []
    assert seen["read"] > 30 + 5
    client.close()
