"""A burst of worker reports from several threads that keeps going through faults, and the
check that every acknowledged (2xx) write is stored. Shared by row 9's test (SIGKILL of the
server) and ``bench/reliability_db_outage.py`` (PostgreSQL stopped and started again)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Burst:
    """Acknowledged writes: ``("status", id)`` for task-status records, ``("report", id,
    output)`` for task-execution reports."""

    acknowledged: list[tuple] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, outcome: str, *acks: tuple) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.acknowledged.extend(acks)


def run_burst(
    burst: Burst,
    *,
    base_url: Callable[[], str],
    key: str,
    flow_execution_id: str,
    task_names: list[str],
    threads: int = 6,
    pause: float = 0.0,
) -> list[threading.Thread]:
    """Start ``threads`` reporters; each alternates a task-status batch of 5 and a
    ``completed`` report of a fresh ``(task, index)``. ``base_url()`` is read per request (a
    restarted server may listen elsewhere). They run until ``burst.stop`` is set."""
    counter = itertools.count(1000)

    def reporter(n: int) -> None:
        http = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=5)
        try:
            while not burst.stop.is_set():
                i = next(counter)
                task = task_names[i % len(task_names)]
                _one(burst, http, base_url(), flow_execution_id, task, i)
                if pause:
                    time.sleep(pause)
        finally:
            http.close()

    workers = [threading.Thread(target=reporter, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def _one(burst: Burst, http: httpx.Client, url: str, fe: str, task: str, i: int) -> None:
    try:
        if i % 2:
            statuses = [{"task_name": task, "status": f"s{i}.{k}"} for k in range(5)]
            response = http.post(
                f"{url}/api/flow-executions/{fe}/task-status", json={"statuses": statuses}
            )
            if response.status_code == 200:
                burst.record("2xx", *[("status", row["id"]) for row in response.json()])
                return
        else:
            output = {"i": i}
            response = http.post(
                f"{url}/api/task-executions",
                json={
                    "flow_execution_id": fe,
                    "task_name": task,
                    "task_execution_idx": i,
                    "status": "completed",
                    "output": output,
                },
            )
            if response.status_code in (200, 201):
                burst.record("2xx", ("report", response.json()["id"], output))
                return
        burst.record(f"http {response.status_code}")
    except httpx.HTTPError as exc:
        burst.record(type(exc).__name__)
        time.sleep(0.05)


def lost_acknowledged(burst: Burst) -> list[tuple]:
    """The acknowledged writes the database does not hold (should be none)."""
    from executions.models import TaskExecution, TaskStatus

    status_ids = [ack[1] for ack in burst.acknowledged if ack[0] == "status"]
    reports = {ack[1]: ack[2] for ack in burst.acknowledged if ack[0] == "report"}
    found_status = set()
    for start in range(0, len(status_ids), 1000):
        chunk = status_ids[start : start + 1000]
        found_status |= {
            str(pk) for pk in TaskStatus.objects.filter(id__in=chunk).values_list("id", flat=True)
        }
    stored: dict[str, Any] = {}
    ids = list(reports)
    for start in range(0, len(ids), 1000):
        for pk, status, output in TaskExecution.objects.filter(
            id__in=ids[start : start + 1000]
        ).values_list("id", "status", "output"):
            if status == "completed":
                stored[str(pk)] = output
    lost = [("status", pk) for pk in status_ids if pk not in found_status]
    lost += [("report", pk) for pk, output in reports.items() if stored.get(pk) != output]
    return lost
