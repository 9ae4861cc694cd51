"""Engine throughput benchmark (not a test): prints figures for DESIGN §11's engine targets.

1. A 200-task ``noop`` DAG (layers of 20, each task depending on two above) run by 1, 2 and 4
   real worker processes (8 slots each) against a real server: wall time (the flow
   execution's start to its completion, seen by polling the database every 20 ms), tasks/s
   and the **platform overhead per task**:

       overhead/task = (wall time - the executors' own time) / tasks

   where the executors' own time is the summed time of the executor bodies (``noop``: the
   same call timed in this process, ``--executor-runs`` times; microseconds). Everything else
   is platform: starting the flow execution, claims and their long-poll wake-ups, the worker's
   requests per task, the engine's scheduling, the database. Tasks run in parallel, so this is
   wall time per task, not the latency of one task (also printed: queued→claimed and
   claimed→reported medians). Target: < 10 ms per task with 4 workers.
2. In-process, editing the root of a 1,000-task DAG (layers of 37): dry run, mark stale only
   (the target: < 200 ms), and mark stale + re-queue (``execute_flow=true``), with the SQL
   statements each runs. Each edit works on a flow execution just run to completion
   (``--repeat`` runs of each, the three alternated).

    .venv/bin/python bench/engine_throughput.py                  # temporary SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_engine .venv/bin/python \
        bench/engine_throughput.py [--server prod|uvicorn] [--repeat N]

``--server prod`` (default on PostgreSQL) serves the way production does (``bin/serve-prod``:
gunicorn with ``WEB_CONCURRENCY`` uvicorn workers, by default the production default of 2 (one
per core here), and a psycopg connection pool, ``DATABASE_POOL=true``); ``--server uvicorn``
runs one plain uvicorn process with a new database connection per request (``CONN_MAX_AGE=0``,
the e2e tests' setup). The database is migrated and gets a fresh organization per run.
"""

from __future__ import annotations

import argparse
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("MAX_CONCURRENT_EXECUTIONS", "100")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from executions import dsl  # noqa: E402
from executions.engine import leases, lifecycle  # noqa: E402
from executions.engine import reports as task_executions  # noqa: E402
from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution  # noqa: E402
from executions.services import task_execution_edits  # noqa: E402
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


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CONN_MAX_AGE="0", **extra)
    env.pop("REDIS_URL", None)
    return env


def start_server(mode: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if mode == "prod":
        command = [str(ROOT / "bin" / "serve-prod"), "--log-level", "warning"]
        env = subprocess_env(
            BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY=os.environ.get("WEB_CONCURRENCY", "2"),
            DATABASE_POOL="true",
            DEBUG="false",
            SECRET_KEY=os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            VENV=str(Path(sys.executable).parent.parent),
        )
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ]  # fmt: skip
        env = subprocess_env()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
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


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of a process and its live descendants (Linux ``/proc``), so
    the platform's cost per task can be read apart from the machine's load."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, ()))
    return total


def executor_seconds(runs: int) -> float:
    """Mean time of one ``noop`` executor body as the worker runs it (validation included)."""
    from executions.worker.executors import ExecutionContext, builtin_registry

    registry = builtin_registry()
    context = ExecutionContext()
    began = time.perf_counter()
    for _ in range(runs):
        registry.run("noop", {}, context)
    return (time.perf_counter() - began) / runs


def run_dag(
    flow: Flow, workers: int, url: str, key: str, per_executor: float, server: subprocess.Popen
) -> dict:
    processes = start_workers(workers, url, key)
    time.sleep(3)  # let them start and sit in their long-poll
    try:
        execution = new_execution(flow)
        server_cpu = cpu_seconds(server.pid)
        worker_cpu = sum(cpu_seconds(p.pid) for p in processes)
        began = time.perf_counter()
        lifecycle.start_flow_execution(execution=execution, actor="bench")
        while True:
            execution.refresh_from_db()
            if execution.status in ("completed", "failed"):
                break
            if time.perf_counter() - began > 300:
                raise SystemExit("the DAG did not finish in 5 minutes")
            time.sleep(0.02)
        wall = time.perf_counter() - began
        server_cpu = cpu_seconds(server.pid) - server_cpu
        worker_cpu = sum(cpu_seconds(p.pid) for p in processes) - worker_cpu
    finally:
        stop(processes)
    rows = TaskExecution.objects.filter(flow_execution=execution).values(
        "created_at", "started_at", "completed_at"
    )
    waits = [(r["started_at"] - r["created_at"]).total_seconds() * 1000 for r in rows]
    spans = [(r["completed_at"] - r["started_at"]).total_seconds() * 1000 for r in rows]
    tasks = len(rows)
    overhead = (wall - tasks * per_executor) / tasks * 1000
    print(
        f"  {workers} worker(s) x 8 slots: {execution.status}, {tasks} tasks in {wall:.2f} s"
        f" = {tasks / wall:.1f} tasks/s; overhead/task {overhead:.1f} ms;"
        f" queued→claimed median {statistics.median(waits):.0f} ms, claimed→reported median"
        f" {statistics.median(spans):.0f} ms (p90 {statistics.quantiles(spans, n=10)[-1]:.0f});"
        f" CPU per task: server {server_cpu / tasks * 1000:.1f} ms,"
        f" workers {worker_cpu / tasks * 1000:.1f} ms",
        flush=True,
    )
    return {
        "workers": workers,
        "wall": wall,
        "tasks_per_s": tasks / wall,
        "overhead": overhead,
        "server_cpu": server_cpu / tasks * 1000,
    }


def complete_in_process(execution: FlowExecution, organization, key) -> None:  # noqa: ANN001
    principal = principal_for_key(key)
    while True:
        claimed = leases.claim_task_executions(
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


def staleness(organization, key, repeat: int, *, show_sql: bool = False) -> None:  # noqa: ANN001
    shape = layered(1000, 37)
    flow = make_flow(organization, shape)
    print(f"\n1,000-task DAG ({len(shape)} tasks, layers of 37): editing the root's output")
    principal = principal_for_key(key)
    timings: dict[str, list[float]] = {"dry run": [], "mark stale": [], "mark + re-queue": []}
    queries: dict[str, int] = {}
    statements: dict[str, list[dict]] = {}
    for _ in range(repeat):
        for mode in timings:  # alternated, so that the machine's load hits every mode alike
            execution = new_execution(flow)
            lifecycle.start_flow_execution(execution=execution, actor="bench")
            complete_in_process(execution, organization, key)
            root = TaskExecution.objects.get(flow_execution=execution, task_name="root")
            connection.queries_log.clear()
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                task_execution_edits.edit_task_execution(
                    principal=principal,
                    data={"id": root.id, "output": {"edited": str(uuid.uuid4())}},
                    execute_flow=mode == "mark + re-queue",
                    dry_run=mode == "dry run",
                )
                timings[mode].append((time.perf_counter() - began) * 1000)
            queries[mode] = len(captured.captured_queries)
            statements[mode] = captured.captured_queries
    stale = TaskExecution.objects.filter(flow_execution=execution, stale_status="stale").count()
    queued = TaskExecution.objects.filter(flow_execution=execution, status="queued").count()
    for mode, values in timings.items():
        print(
            f"  {mode}: best {min(values):.0f} ms, median {statistics.median(values):.0f} ms"
            f" ({queries[mode]} SQL statements)"
        )
    print(f"  (last run: {stale} executions marked stale, {queued} re-queued)")
    if show_sql:
        for mode, captured in statements.items():
            print(f"  statements of the last {mode} (ms, as the driver timed their execution):")
            for query in captured:
                sql = " ".join(query["sql"].split())
                print(f"    {float(query['time']) * 1000:7.1f}  {sql[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    parser.add_argument("--server", choices=("prod", "uvicorn"), default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--executor-runs", type=int, default=2000)
    parser.add_argument("--skip-dag", action="store_true")
    parser.add_argument("--skip-staleness", action="store_true")
    parser.add_argument("--sql", action="store_true", help="staleness: time of each statement")
    args = parser.parse_args()
    mode = args.server or ("prod" if postgres else "uvicorn")
    call_command("migrate", interactive=False, verbosity=0)
    organization = create_organization(name=f"bench-{uuid.uuid4().hex[:8]}")
    key_row, key = create_api_key(organization=organization, kind="service")
    processes = os.environ.get("WEB_CONCURRENCY", "2") if mode == "prod" else "1"
    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']}; server: {mode}"
        f" ({processes} process{'es' if processes != '1' else ''})"
    )
    if not args.skip_dag:
        per_executor = executor_seconds(args.executor_runs)
        print(f"noop executor body: {per_executor * 1e6:.1f} µs per task (timed in-process)")
        flow = make_flow(organization, layered(200, 20))
        server, url = start_server(mode)
        results: dict[int, list[dict]] = {}
        try:
            print("200-task noop DAG (layers of 20, each task depending on two above):")
            for _ in range(args.repeat):
                for workers in (int(n) for n in args.workers.split(",")):
                    results.setdefault(workers, []).append(
                        run_dag(flow, workers, url, key, per_executor, server)
                    )
        finally:
            stop([server])
        print("summary (best / median of runs):")
        for workers, runs in results.items():
            overheads = [r["overhead"] for r in runs]
            rates = [r["tasks_per_s"] for r in runs]
            cpu = [r["server_cpu"] for r in runs]
            print(
                f"  {workers} worker(s): {max(rates):.1f} / {statistics.median(rates):.1f}"
                f" tasks/s; overhead/task {min(overheads):.1f} / "
                f"{statistics.median(overheads):.1f} ms; server CPU/task {min(cpu):.1f} / "
                f"{statistics.median(cpu):.1f} ms"
            )
    if not args.skip_staleness:
        staleness(organization, key_row, args.repeat, show_sql=args.sql)


if __name__ == "__main__":
    main()
