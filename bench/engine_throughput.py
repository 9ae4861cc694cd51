"""Engine throughput benchmark (not a test): prints figures.

1. A 200-task ``noop`` DAG run by 1, 2 and 4 real worker processes against a real uvicorn
   server: wall time, tasks/s, and per-task platform time (queued → claimed, claimed →
   reported: for a noop task all of it is platform overhead).
2. In-process: editing the root of a 1,000-task DAG: dry run, mark stale only, and mark stale
   + re-queue (``execute_flow=true``).

    .venv/bin/python bench/engine_throughput.py                  # temporary SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_engine .venv/bin/python \
        bench/engine_throughput.py                               # an existing, empty-able DB

The database is migrated and gets a fresh organization per run. DESIGN §11 targets: < 10 ms
platform overhead per task with 4 workers; marking the root's downstream stale < 200 ms.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATABASE_URL"):
    os.environ["SQLITE_PATH"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowplatform.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("MAX_CONCURRENT_EXECUTIONS", "100")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from executions import dsl, engine  # noqa: E402
from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution  # noqa: E402
from executions.services import task_execution_edits, task_executions  # noqa: E402
from flowplatform.authentication import principal_for_key  # noqa: E402
from flowplatform.services import create_api_key, create_organization  # noqa: E402


def layered(total: int, width: int) -> dict[str, list[str]]:
    """One root, then layers of ``width`` tasks each depending on two of the layer above."""
    shape: dict[str, list[str]] = {"root": []}
    previous = ["root"]
    index = 0
    while len(shape) < total:
        layer = []
        for i in range(min(width, total - len(shape))):
            name = f"t{index}"
            index += 1
            shape[name] = sorted({previous[i % len(previous)], previous[(i + 1) % len(previous)]})
            layer.append(name)
        previous = layer
    return shape


def make_flow(organization, shape: dict[str, list[str]]) -> Flow:  # noqa: ANN001
    definition = {
        "tasks": [
            {"name": name, "task_executor_name": "noop", "depends_on": deps, "parameters": {}}
            for name, deps in shape.items()
        ]
    }
    canonical = dsl.validate_definition(definition).to_dict()
    flow = Flow.objects.create(
        organization=organization, display_name="bench", definition=canonical, version=1
    )
    FlowVersion.objects.create(
        organization=organization, flow=flow, version=1, definition=canonical
    )
    return flow


def new_execution(flow: Flow) -> FlowExecution:
    execution = FlowExecution.objects.create(
        organization_id=flow.organization_id, flow=flow, flow_version=1, input={}
    )
    return execution


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CONN_MAX_AGE="0")
    env.pop("REDIS_URL", None)
    return env


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "flowplatform.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ],  # fmt: skip
        cwd=ROOT,
        env=subprocess_env(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def start_workers(count: int, url: str, key: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "executions.worker",
                "--url",
                url,
                "--key",
                key,
                "--concurrency",
                "8",
                "--wait-seconds",
                "5",
                "--log-level",
                "WARNING",
                "--shutdown-grace-seconds",
                "1",
            ],  # fmt: skip
            cwd=ROOT,
            env=subprocess_env(),
        )
        for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_dag(flow: Flow, workers: int, url: str, key: str) -> None:
    processes = start_workers(workers, url, key)
    time.sleep(3)  # let them start and sit in their long-poll
    try:
        execution = new_execution(flow)
        began = time.perf_counter()
        engine.start_flow_execution(execution=execution, actor="bench")
        while True:
            execution.refresh_from_db()
            if execution.status in ("completed", "failed"):
                break
            if time.perf_counter() - began > 300:
                raise SystemExit("the DAG did not finish in 5 minutes")
            time.sleep(0.02)
        wall = time.perf_counter() - began
    finally:
        stop(processes)
    rows = TaskExecution.objects.filter(flow_execution=execution).values(
        "created_at", "started_at", "completed_at"
    )
    waits = [(r["started_at"] - r["created_at"]).total_seconds() * 1000 for r in rows]
    spans = [(r["completed_at"] - r["started_at"]).total_seconds() * 1000 for r in rows]
    tasks = len(rows)
    print(
        f"  {workers} worker(s) x 8 slots: {execution.status}, {tasks} tasks in {wall:.2f} s"
        f" = {tasks / wall:.0f} tasks/s; per task: queued→claimed median "
        f"{statistics.median(waits):.1f} ms, claimed→reported median "
        f"{statistics.median(spans):.1f} ms (p90 {statistics.quantiles(spans, n=10)[-1]:.1f});"
        f" wall/task {wall / tasks * 1000:.1f} ms"
    )


def complete_in_process(execution: FlowExecution, organization, key) -> None:  # noqa: ANN001
    principal = principal_for_key(key)
    while True:
        claimed = engine.claim_task_executions(
            organization=organization, worker_id="bench", executors=["noop"], limit=50
        )
        if not claimed:
            return
        for item in claimed:
            task_executions.report_task_execution(
                principal=principal,
                data={
                    "flow_execution_id": execution.id,
                    "task_name": item["task_name"],
                    "task_execution_idx": item["task_execution_idx"],
                    "status": "completed",
                    "output": {"n": item["task_name"]},
                    "worker_id": "bench",
                },
            )


def staleness(organization, key) -> None:  # noqa: ANN001
    shape = layered(1000, 37)
    flow = make_flow(organization, shape)
    print(f"\n1,000-task DAG ({len(shape)} tasks, layers of 37): running it in-process...")
    principal = principal_for_key(key)
    timings: dict[str, list[float]] = {"dry run": [], "mark stale": [], "mark + re-queue": []}
    for mode in ("dry run", "mark stale", "mark + re-queue"):
        for _ in range(3):
            execution = new_execution(flow)
            engine.start_flow_execution(execution=execution, actor="bench")
            complete_in_process(execution, organization, key)
            root = TaskExecution.objects.get(flow_execution=execution, task_name="root")
            began = time.perf_counter()
            task_execution_edits.edit_task_execution(
                principal=principal,
                data={"id": root.id, "output": {"edited": str(uuid.uuid4())}},
                execute_flow=mode == "mark + re-queue",
                dry_run=mode == "dry run",
            )
            timings[mode].append((time.perf_counter() - began) * 1000)
    stale = TaskExecution.objects.filter(flow_execution=execution, stale_status="stale").count()
    queued = TaskExecution.objects.filter(flow_execution=execution, status="queued").count()
    for mode, values in timings.items():
        print(f"  {mode}: best {min(values):.0f} ms, median {statistics.median(values):.0f} ms")
    print(f"  (last run: {stale} executions marked stale, {queued} re-queued)")


def main() -> None:
    call_command("migrate", interactive=False, verbosity=0)
    organization = create_organization(name=f"bench-{uuid.uuid4().hex[:8]}")
    key_row, key = create_api_key(organization=organization, kind="service")
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    flow = make_flow(organization, layered(200, 20))
    server, url = start_server()
    try:
        print("200-task noop DAG (layers of 20, each task depending on two above):")
        for workers in (1, 2, 4):
            run_dag(flow, workers, url, key)
    finally:
        stop([server])
    staleness(organization, key_row)


if __name__ == "__main__":
    main()
