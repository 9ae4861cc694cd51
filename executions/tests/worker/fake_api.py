"""A small in-memory flowplatform API for the runner tests.

It implements exactly the worker protocol (claim with long-poll, heartbeat, release,
task-execution reports, task outputs, task-status batches) over real HTTP, and records
every call in arrival order so tests can check what the worker said and when.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .servers import QuietHandler, serve

KEY = "test-service-key"
FLOW_EXECUTION_ID = "11111111-2222-3333-4444-555555555555"


class FakeApi:
    """The server's state; handlers reach it through ``self.server.api``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        # (kind, task_name, detail) in arrival order: the protocol as the server saw it.
        self.events: list[tuple[str, str, str]] = []
        self.claims: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.releases: list[str] = []
        self.heartbeats: list[str] = []
        self.lose_lease: set[str] = set()  # task ids whose heartbeat answers 409
        self.cancel: set[str] = set()  # task ids whose heartbeat asks for cancellation
        self.reject_reports: set[str] = set()  # task names whose report answers 409
        self.url = ""

    def add_task(
        self,
        task_name: str,
        executor: str,
        params: Any = None,
        *,
        timeout_seconds: float | None = None,
        lease_seconds: float = 0.3,
    ) -> str:
        task_id = str(uuid.uuid4())
        task = {
            "id": task_id,
            "organization_id": "org-1",
            "flow_id": "flow-1",
            "flow_execution_id": FLOW_EXECUTION_ID,
            "task_name": task_name,
            "task_execution_idx": 0,
            "status": "running",
            "input": params,
            "task_executor_name": executor,
            "lease_expires_at": "2030-01-01T00:00:00Z",
            "lease_seconds": lease_seconds,
            "attempt": 1,
            "max_attempts": 3,
            "timeout_seconds": timeout_seconds,
        }
        with self.cond:
            self.tasks[task_id] = task
            self.queue.append(task)
            self.cond.notify_all()
        return task_id

    def record(self, kind: str, task_name: str, detail: str = "") -> None:
        with self.cond:
            self.events.append((kind, task_name, detail))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` holds (checked on every recorded call)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))
        return True

    def events_of(self, task_name: str) -> list[tuple[str, str]]:
        with self.cond:
            return [(kind, detail) for kind, name, detail in self.events if name == task_name]

    def claim(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + float(body.get("wait_seconds", 0))
        with self.cond:
            self.claims.append(body)
            self.cond.notify_all()
            while True:
                ready = [t for t in self.queue if t["task_executor_name"] in body["executors"]]
                remaining = deadline - time.monotonic()
                if ready or remaining <= 0:
                    break
                self.cond.wait(remaining)
            taken = ready[: body["limit"]]
            for task in taken:
                self.queue.remove(task)
                self.record("claim", task["task_name"])
            return taken


def _envelope(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": code, "details": []}, "request_id": "req-1"}


class FakeApiHandler(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        api: FakeApi = self.server.api  # type: ignore[attr-defined]
        body = json.loads(self.read_body() or b"null")
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send(401, _envelope("bad key", "unauthorized"))
            return
        path = self.path
        if path == "/api/task-executions/claim":
            self.send(200, {"task_executions": api.claim(body)})
        elif match := re.fullmatch(r"/api/task-executions/([^/]+)/heartbeat", path):
            self.heartbeat(api, match.group(1))
        elif match := re.fullmatch(r"/api/task-executions/([^/]+)/release", path):
            task = api.tasks[match.group(1)]
            api.releases.append(task["id"])
            api.record("release", task["task_name"])
            self.send(200, {"id": task["id"], "status": "queued"})
        elif path == "/api/task-executions":
            api.reports.append(body)
            api.record("report", body["task_name"], body["status"])
            if body["task_name"] in api.reject_reports:
                self.send(409, _envelope("lease passed to another attempt", "conflict"))
            else:
                self.send(201, {**body, "id": str(uuid.uuid4())})
        elif path == "/api/task-outputs":
            api.outputs.append(body)
            api.record("output", body["task_name"], body["status"])
            self.send(201, {**body, "id": str(uuid.uuid4())})
        elif re.fullmatch(r"/api/flow-executions/[^/]+/task-status", path):
            for item in body["statuses"]:
                api.statuses.append(item)
                api.record("status", item["task_name"], item["status"])
            self.send(200, body["statuses"])
        else:
            self.send(404, _envelope("no route", "not_found"))

    def heartbeat(self, api: FakeApi, task_id: str) -> None:
        task = api.tasks[task_id]
        api.heartbeats.append(task_id)
        api.record("heartbeat", task["task_name"])
        if task_id in api.lose_lease:
            self.send(409, _envelope("lease lost", "conflict"))
        else:
            answer = {"lease_expires_at": "2030-01-01T00:00:00Z"}
            self.send(200, {**answer, "cancel_requested": task_id in api.cancel})


@contextmanager
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    with serve(FakeApiHandler, api=api) as url:
        api.url = url
        yield api
