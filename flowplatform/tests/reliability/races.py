"""Concurrency drivers for row 7, shared by the PostgreSQL tests and
``bench/reliability_claims.py``: many real HTTP clients, released together by a barrier,
against a live server with several worker processes (true parallel transactions)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from executions import dsl
from executions.engine import lifecycle
from executions.models import Flow, FlowExecution, FlowVersion


def run_together(count: int, fn: Callable[[int], Any], *, timeout: float = 120) -> list[Any]:
    """``fn(i)`` in ``count`` threads released at once; results (or the exception raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300)


def queue_tasks(organization: Any, *, executions: int, width: int) -> list[FlowExecution]:
    """``executions`` running flow executions of a flow of ``width`` independent noop tasks:
    ``executions * width`` queued task executions."""
    organization.max_concurrent_executions = executions + 10
    organization.save(update_fields=["max_concurrent_executions"])
    definition = {"tasks": [{"name": f"t{i}", "task_executor_name": "noop"} for i in range(width)]}
    canonical = dsl.validate_definition(definition).to_dict()
    flow = Flow.objects.create(
        organization=organization, display_name=f"race-{width}", definition=canonical
    )
    FlowVersion.objects.create(
        organization=organization, flow=flow, version=1, definition=canonical
    )
    started = []
    for _ in range(executions):
        execution = FlowExecution.objects.create(
            organization=organization, flow=flow, flow_version=1
        )
        started.append(lifecycle.start_flow_execution(execution=execution, actor="race"))
    return started


@dataclass
class ClaimRace:
    claimers: int
    claimed: int
    unique: int
    requests: int
    seconds: float
    errors: list[str]

    @property
    def double_claims(self) -> int:
        return self.claimed - self.unique


def claim_race(base_url: str, key: str, *, claimers: int, limit: int = 10) -> ClaimRace:
    """Every claimer claims until the queue is empty; what each got, and how often."""
    requests = Counter()

    def claimer(i: int) -> list[str]:
        got: list[str] = []
        empty = 0
        with client(base_url, key) as http:
            while empty < 2:
                response = http.post(
                    "/api/task-executions/claim",
                    json={"worker_id": f"claimer-{i}", "executors": ["noop"], "limit": limit},
                )
                requests[i] += 1
                response.raise_for_status()
                tasks = response.json()["task_executions"]
                empty = 0 if tasks else empty + 1
                got += [task["id"] for task in tasks]
        return got

    began = time.monotonic()
    results = run_together(claimers, claimer, timeout=600)
    seconds = time.monotonic() - began
    errors = [repr(r) for r in results if isinstance(r, Exception)]
    ids = [task_id for r in results if isinstance(r, list) for task_id in r]
    return ClaimRace(claimers, len(ids), len(set(ids)), sum(requests.values()), seconds, errors)
