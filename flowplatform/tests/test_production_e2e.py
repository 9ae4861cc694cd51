"""The production topology for real: ``bin/serve-prod`` (gunicorn + uvicorn workers) servers
and worker processes on PostgreSQL and Redis, on loopback.

- several servers and workers run flows together: every execution completes, every
  WebSocket client sees every event of its flow whichever server caused it, no task runs
  twice, /metrics (summed over processes) and the JSON logs tell the same story, and
  SIGTERM stops everything cleanly;
- a server shutting down closes WebSockets with 1001 and finishes in-flight requests;
- a worker told to stop while it holds a long task gives it back without using an attempt;
- /metrics sums the counters of every worker process of a server.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution, TaskStatus
from executions.tests.e2e.conftest import wait_until
from flowplatform.models import Organization
from flowplatform.tests.prod import ProdServer, Topology, Watcher, parse_metrics, wait_ready
from realtime.models import Event

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

FE = FlowExecutionStatus
TE = TaskExecutionStatus

# Ten noop tasks, five levels deep, fan-out and fan-in.
DAG = {
    "src": [],
    "a1": ["src"],
    "a2": ["src"],
    "a3": ["src"],
    "b1": ["a1", "a2"],
    "b2": ["a2", "a3"],
    "join": ["b1", "b2"],
    "c1": ["src", "join"],
    "c2": ["join"],
    "sink": ["c1", "c2"],
}
EXECUTIONS = 20
TOPOLOGY_BUDGET_SECONDS = 85  # the whole test, setup included, stays under 90 s


def definition(shape: dict[str, list[str]], **parameters: dict) -> dict:
    return {
        "tasks": [
            {
                "name": name,
                "task_executor_name": "noop",
                "depends_on": deps,
                "parameters": parameters.get(name, {"task": name}),
            }
            for name, deps in shape.items()
        ]
    }


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topology = Topology(tmp_path)
    yield topology
    topology.stop_all()


def create_flow(server: ProdServer, key: str, flow_definition: dict) -> str:
    with server.client(key) as client:
        response = client.post(
            "/api/flows", json={"display_name": "ops", "definition": flow_definition}
        )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def total(servers: list[ProdServer], name: str, labels: str = "") -> float:
    return sum(server.metrics().get((name, labels), 0.0) for server in servers)


class Budget:
    """One deadline for a whole test: each wait gets at most what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        remaining = self.deadline - time.monotonic()
        assert remaining > 0, "the test ran out of its time budget"
        return min(cap, remaining)


@pytest.mark.redis
def test_two_servers_three_workers_twenty_executions(topology: Topology, tenant) -> None:  # noqa: ANN001
    timings: dict[str, float] = {}
    began = time.monotonic()
    budget = Budget(TOPOLOGY_BUDGET_SECONDS)
    organization = Organization.objects.filter(id=tenant.organization.id)
    organization.update(max_concurrent_executions=EXECUTIONS)  # all run at once
    servers = [topology.server("server-a"), topology.server("server-b")]
    wait_ready(*servers, timeout=budget.left(30))
    timings["servers ready"] = time.monotonic() - began

    flow_id = create_flow(servers[0], tenant.user_key, definition(DAG))
    watchers = [
        Watcher(f"{server.ws_url}/ws/flows/{flow_id}?token={tenant.user_key}") for server in servers
    ]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        assert watcher.subscribed.wait(budget.left(10)) and watcher.error is None, watcher.error
    workers = [
        topology.worker(f"worker-{i}", servers[i % 2], tenant.service_key, "--concurrency", "4")
        for i in range(3)
    ]

    started = time.monotonic()
    clients = [server.client(tenant.user_key) for server in servers]

    def create(i: int) -> str:  # alternating between the servers
        body = {"flow_id": flow_id, "input": {"n": i}}
        response = clients[i % 2].post("/api/flow-executions", json=body, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(create, range(EXECUTIONS)))
    for client in clients:
        client.close()

    def all_finished() -> bool:
        statuses = FlowExecution.objects.filter(id__in=ids).values_list("status", flat=True)
        return all(status in (FE.COMPLETED, FE.FAILED, FE.CANCELLED) for status in statuses)

    wait_until(all_finished, timeout=budget.left(60), interval=0.2, what="every execution")
    timings["20 executions x 10 tasks"] = time.monotonic() - started
    finished = Counter(FlowExecution.objects.filter(id__in=ids).values_list("status", flat=True))
    assert finished == {FE.COMPLETED: EXECUTIONS}, [s.output() for s in (*servers, *workers)]

    def workers_done() -> bool:  # a worker's last call for a task: its "completed" status
        done = TaskStatus.objects.filter(flow_execution_id__in=ids, status=TE.COMPLETED)
        return done.count() == EXECUTIONS * len(DAG)

    wait_until(workers_done, timeout=budget.left(15), what="the workers' last reports")

    # No task ran twice: one execution per (flow execution, task), at index 0, claimed once.
    runs = list(
        TaskExecution.objects.filter(flow_execution_id__in=ids).values_list(
            "id", "flow_execution_id", "task_name", "task_execution_idx", "status", "attempt"
        )
    )
    assert len(runs) == EXECUTIONS * len(DAG)
    assert len({(fe, name) for _, fe, name, *_ in runs}) == EXECUTIONS * len(DAG)
    assert {(idx, status, attempt) for *_, idx, status, attempt in runs} == {(0, TE.COMPLETED, 1)}
    claims = Counter(
        event.data["id"]
        for event in Event.objects.filter(flow_id=flow_id, type="task_execution.updated")
        if event.data.get("status") == TE.RUNNING
    )
    assert set(claims) == {str(pk) for pk, *_ in runs}
    assert set(claims.values()) == {1}

    # Every client saw every event of its flow, whichever server caused it, once.
    outbox = list(Event.objects.filter(flow_id=flow_id).values_list("id", flat=True))
    for watcher in watchers:
        expected = {pk for pk in outbox if pk > watcher.last_event_id}
        wait_until(
            lambda w=watcher, e=expected: e <= set(w.event_ids),
            timeout=budget.left(15),
            what=f"every event at {watcher.url.split('?')[0]}",
        )
        assert set(watcher.event_ids) == expected
        assert len(watcher.event_ids) == len(expected)  # none twice
    timings["events delivered"] = time.monotonic() - started

    # /metrics of both servers (each summing its processes) agree with the database.
    assert total(servers, "flowplatform_task_claims_total") == len(runs)
    completed = 'status="completed"'
    assert total(servers, "flowplatform_task_transitions_total", completed) == len(runs)
    assert total(servers, "flowplatform_events_published_total") == len(outbox)
    accepted = 'outcome="accepted"'
    assert total(servers, "flowplatform_websocket_connections_total", accepted) == 2
    executions_gauge = servers[1].metrics()[("flowplatform_flow_executions", completed)]
    assert executions_gauge == EXECUTIONS

    # SIGTERM everything at once: clean exits, WebSockets told 1001, nothing left running.
    stopping = time.monotonic()
    for process in (*workers, *servers):
        process.terminate()
    codes = {process.name: process.wait(budget.left(30)) for process in (*workers, *servers)}
    timings["SIGTERM to all exited"] = time.monotonic() - stopping
    assert codes == dict.fromkeys(codes, 0), codes
    for watcher in watchers:
        watcher.stop()
        assert watcher.close_code == 1001, (watcher.close_code, watcher.error)
    assert not TaskExecution.objects.filter(status=TE.RUNNING).exists()

    # Structured logs: a JSON line per API request and per task change; no key, ever.
    lines = [line for server in servers for line in server.json_lines()]
    requests = [line for line in lines if line.get("logger") == "flowplatform.request"]
    assert requests and all(
        {"request_id", "route", "status", "duration_ms", "organization_id"} <= set(line)
        for line in requests
    )
    assert {line["organization_id"] for line in requests} == {str(tenant.organization.id)}
    changes = [line for line in lines if line.get("logger") == "executions.engine.transitions"]
    assert sum(1 for line in changes if line.get("to") == "completed" and "idx" in line) == len(
        runs
    )
    assert not [line for line in lines if line.get("level") in ("ERROR", "CRITICAL")]
    for process in (*servers, *workers):
        text = process.log.read_text(errors="replace")
        assert tenant.user_key not in text and tenant.service_key not in text, process.name
    timings["total"] = time.monotonic() - began
    print("\ntopology timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))


def test_server_shutdown_closes_websockets_with_1001_and_ends_in_flight_requests(
    topology: Topology,
    tenant,  # noqa: ANN001
) -> None:
    server = topology.server("server")
    wait_ready(server)
    flow_id = create_flow(server, tenant.user_key, definition({"only": []}))
    watcher = Watcher(f"{server.ws_url}/ws/flows/{flow_id}?token={tenant.user_key}")
    watcher.start()
    assert watcher.subscribed.wait(10) and watcher.error is None, watcher.error

    # A worker's claim long-poll is in flight when the server is told to stop.
    answers: list[httpx.Response] = []
    body = {"worker_id": "w1", "executors": ["noop"], "limit": 1, "wait_seconds": 25}

    def long_poll() -> None:
        with server.client(tenant.service_key) as client:
            answers.append(client.post("/api/task-executions/claim", json=body, timeout=40))

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(1.0)

    stopping = time.monotonic()
    server.terminate()
    watcher.join(timeout=15)
    poller.join(timeout=15)
    assert server.wait(timeout=20) == 0, server.output()
    elapsed = time.monotonic() - stopping

    assert watcher.close_code == 1001, (watcher.close_code, watcher.error)
    assert [answer.status_code for answer in answers] == [200]
    assert answers[0].json() == {"task_executions": []}
    assert elapsed < 10, elapsed  # not the long-poll's 25 s
    assert "closing 1 WebSocket connection(s) with 1001" in server.output()


def test_worker_sigterm_releases_its_long_task_without_using_an_attempt(
    topology: Topology,
    tenant,  # noqa: ANN001
) -> None:
    server = topology.server("server")
    wait_ready(server)
    long = definition({"long": []}, long={"sleep_seconds": 120})
    long["tasks"][0]["retries"] = {"max_attempts": 3}
    flow_id = create_flow(server, tenant.user_key, long)
    with server.client(tenant.user_key) as client:
        response = client.post("/api/flow-executions", json={"flow_id": flow_id})
    assert response.status_code == 201, response.text
    execution_id = response.json()["id"]
    worker = topology.worker(
        "worker", server, tenant.service_key, "--shutdown-grace-seconds", "0.5"
    )

    def running() -> TaskExecution | None:
        return TaskExecution.objects.filter(
            flow_execution_id=execution_id, status=TE.RUNNING
        ).first()

    task = wait_until(running, timeout=20, what="the worker to claim the task")
    assert task.attempt == 1 and task.lease_owner

    worker.terminate()
    assert worker.wait(timeout=15) == 0, worker.output()

    (released,) = TaskExecution.objects.filter(flow_execution_id=execution_id)
    assert released.id == task.id
    assert released.status == TE.QUEUED
    assert (released.task_execution_idx, released.attempt) == (0, 1)
    assert released.lease_owner is None and released.error is None
    assert FlowExecution.objects.get(id=execution_id).status == FE.RUNNING
    assert "released" in worker.output()


def test_metrics_are_summed_over_the_worker_processes(topology: Topology, tenant) -> None:  # noqa: ANN001
    server = topology.server("server", workers=2)
    wait_ready(server)
    route = 'method="GET",route="/api/me",status="200"'
    sent = 0

    def per_process() -> list[float]:
        """What each worker process recorded, read from its own file."""
        counts = []
        for path in server.metrics_dir.glob("counter_*.db"):
            merged = MultiProcessCollector.merge([str(path)], accumulate=False)
            value = sum(
                sample.value
                for metric in merged
                for sample in metric.samples
                if sample.name == "flowplatform_http_requests_total"
                and sample.labels.get("route") == "/api/me"
            )
            counts.append(value)
        return counts

    def both_served() -> bool:
        nonlocal sent
        for _ in range(10):  # new connections: each process accepts some of them
            response = httpx.get(
                f"{server.url}/api/me", headers={"Authorization": f"Bearer {tenant.user_key}"}
            )
            assert response.status_code == 200
            sent += 1
        return sum(1 for count in per_process() if count) >= 2

    wait_until(both_served, timeout=30, interval=0, what="both processes to serve /api/me")
    counts = per_process()
    scraped = [parse_metrics(httpx.get(f"{server.url}/metrics").text) for _ in range(4)]
    for values in scraped:  # whichever process answers the scrape, it reports the sum
        assert values[("flowplatform_http_requests_total", route)] == sent
    assert sum(counts) == sent and sorted(counts)[-2] > 0
