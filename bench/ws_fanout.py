"""Benchmark: WebSocket fan-out latency (DESIGN §11: 1,000 subscribers of one flow receive an
event with p99 < 250 ms after the HTTP response that caused it).

Not a test: it prints figures. Run from the repository root with Redis (and, for the
documented figures, PostgreSQL) up::

    .venv/bin/python bench/ws_fanout.py                       # 1,000 clients, 20 events
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/ws_fanout.py --clients 1000 --events 20 --client-procs 2

What it does, all bounded and on loopback only (at most 5,000 clients and 500 events, every
connection, request and wait has a timeout, the server is stopped on exit):

1. Raises this process's open-file limit to its hard limit (``resource.setrlimit``; client
   processes and the server inherit it). Migrates the database (``DATABASE_URL``, or a
   temporary SQLite file with ``--sqlite``), and creates an organization ``bench-ws-…`` with
   keys, a flow and a flow execution (deleted at the end unless ``--keep``).
2. Starts one uvicorn server (``--workers`` processes, ``DEBUG=false``, no access log) with
   ``REDIS_URL`` (channels-redis pub/sub layer, as in production).
3. Connects ``--clients`` WebSocket clients to ``/ws/flows/<flow_id>``, spread over
   ``--client-procs`` processes so the clients' own CPU does not dominate, and waits until all
   have their ``subscribed`` frame.
4. ``--events`` times: ``POST /api/task-outputs`` with a service key (one ``task_output.*``
   event each), noting the monotonic clock when the response arrived, then waiting
   ``--interval`` seconds. Each client notes the monotonic clock (system-wide on Linux, so
   comparable across processes) when the event's frame arrives.
5. Prints, over every (client, event) pair, p50 / p99 / max latency from the HTTP response to
   receipt, the share delivered, and the HTTP request latency.

The client machine is the server machine: on a 2-core box the clients compete with the server
for CPU, so the figures are an upper bound of what a separate client fleet would see.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime.tests.live import LiveServer, run_manage, server_env  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_CLIENTS = 5000
MAX_EVENTS = 500

SEED = """
import json, sys, uuid
import django
django.setup()
from flowplatform import tenancy
tenancy.bypass_process()  # a setup script sees every organization, like a management command
from flowplatform.services import create_api_key, create_organization, get_or_create_user
from realtime.tests.factories import make_execution, make_flow
suffix = uuid.uuid4().hex[:8]
org = create_organization(name=f"bench-ws-{suffix}")
user = get_or_create_user(username=f"bench-ws-{suffix}")
_, user_key = create_api_key(organization=org, kind="user", user=user)
_, service_key = create_api_key(organization=org, kind="service")
flow = make_flow(org, name="ws fan-out")
execution = make_execution(flow)
print(json.dumps({"organization_id": str(org.id), "flow_id": str(flow.id),
    "flow_execution_id": str(execution.id), "user_key": user_key, "service_key": service_key}))
"""

CLEANUP = """
import sys
import django
django.setup()
from flowplatform import tenancy
tenancy.bypass_process()  # a setup script sees every organization, like a management command
from django.contrib.auth import get_user_model
from flowplatform.models import Organization
from outputs.models import TaskOutput
from executions.models import FlowExecution, Flow
org = Organization.objects.get(id=sys.argv[1])
TaskOutput.objects.filter(organization=org).delete()
FlowExecution.objects.filter(organization=org).delete()
Flow.objects.filter(organization=org).delete()
get_user_model().objects.filter(username=f"bench-ws-{org.name.split('-')[-1]}").delete()
org.delete()
"""


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_python(env: dict[str, str], code: str, *args: str) -> str:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-4000:])
    return result.stdout


# -- client processes ----------------------------------------------------------------------------


def client_process(url: str, count: int, conn) -> None:  # noqa: ANN001 - a Connection
    """Connect ``count`` clients, report readiness, collect receipts until told to stop."""
    asyncio.run(_clients(url, count, conn))


async def _clients(url: str, count: int, conn) -> None:  # noqa: ANN001
    import orjson
    from websockets.asyncio.client import connect

    receipts: list[tuple[int, int]] = []
    sockets = []
    failures = 0

    async def open_one() -> None:
        nonlocal failures
        for _ in range(3):
            try:
                ws = await asyncio.wait_for(connect(url, max_queue=None), timeout=30)
                first = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                if first.get("type") != "subscribed":
                    raise RuntimeError(first)
                sockets.append(ws)
                return
            except Exception:  # noqa: BLE001 - retried, then counted
                await asyncio.sleep(0.2)
        failures += 1

    for start in range(0, count, 100):  # at most 100 handshakes in flight
        await asyncio.gather(*(open_one() for _ in range(min(100, count - start))))

    async def read(ws) -> None:  # noqa: ANN001
        try:
            async for frame in ws:
                now = time.monotonic_ns()
                message = orjson.loads(frame)
                summary = (message.get("data") or {}).get("summary") or {}
                if message.get("type") == "event" and "bench" in summary:
                    receipts.append((summary["bench"], now))
        except Exception:  # noqa: BLE001 - connection closed at the end
            return

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    conn.send(("ready", len(sockets), failures))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "stop"
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    conn.send(("receipts", receipts))


# -- the run -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between events")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="serve with --ws-per-message-deflate false (no per-client zlib per frame)",
    )
    parser.add_argument(
        "--ws", default="auto", help="uvicorn --ws implementation (auto, websockets, wsproto…)"
    )
    parser.add_argument("--sqlite", action="store_true", help="temporary SQLite file database")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's rows")
    args = parser.parse_args()
    clients = max(1, min(args.clients, MAX_CLIENTS))
    events = max(1, min(args.events, MAX_EVENTS))
    procs = max(1, min(args.client_procs, clients))

    fd_limit = raise_fd_limit()
    if fd_limit < clients + 256:
        sys.exit(f"open-file limit {fd_limit} is too low for {clients} clients")
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    tmp = tempfile.TemporaryDirectory(prefix="ws-fanout-")
    if args.sqlite:
        database_url = f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}"
    else:
        database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    env = server_env(
        database_url=database_url,
        redis_url=redis_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
    )
    run_manage(env, "migrate", "-v", "0")
    data = __import__("json").loads(run_python(env, SEED).strip().splitlines()[-1])
    print(
        f"ws fan-out: {clients} clients in {procs} process(es), {events} events every"
        f" {args.interval}s, uvicorn x{args.workers}, layer RedisPubSubChannelLayer,"
        f" database {'SQLite' if args.sqlite else 'PostgreSQL'}, --ws {args.ws},"
        f" permessage-deflate {'off' if args.no_deflate else 'on'}, fd limit {fd_limit}"
    )
    server_args = ["--no-access-log", "--ws", args.ws]
    if args.no_deflate:
        server_args += ["--ws-per-message-deflate", "false"]
    server = LiveServer(
        env,
        Path(tmp.name) / "server.log",
        workers=args.workers,
        log_level="warning",
        extra_args=tuple(server_args),
    )
    children = []
    try:
        server.start()
        ws_url = f"{server.ws_url}/ws/flows/{data['flow_id']}?token={data['user_key']}"
        ctx = mp.get_context("spawn")
        started = time.monotonic()
        for index in range(procs):
            share = clients // procs + (1 if index < clients % procs else 0)
            parent, child = ctx.Pipe()
            process = ctx.Process(target=client_process, args=(ws_url, share, child), daemon=True)
            process.start()
            children.append((process, parent))
        connected = failed = 0
        for _, pipe in children:
            if not pipe.poll(300):
                raise RuntimeError("clients did not connect within 300 s")
            _, ok, bad = pipe.recv()
            connected, failed = connected + ok, failed + bad
        print(
            f"connected {connected} clients in {time.monotonic() - started:.1f}s ({failed} failed)"
        )

        sent_at: dict[int, int] = {}
        http_ms: list[float] = []
        with httpx.Client(
            base_url=server.http_url,
            headers={"Authorization": f"Bearer {data['service_key']}"},
            timeout=30,
        ) as http:
            for i in range(events):
                body = {
                    "flow_execution_id": data["flow_execution_id"],
                    "task_name": "abc"[i % 3],
                    "summary": {"bench": i},
                }
                before = time.monotonic_ns()
                response = http.post("/api/task-outputs", json=body)
                sent_at[i] = time.monotonic_ns()
                http_ms.append((sent_at[i] - before) / 1e6)
                response.raise_for_status()
                time.sleep(args.interval)
        time.sleep(2)  # stragglers

        latencies: list[float] = []
        early = 0
        for _, pipe in children:
            pipe.send("stop")
        for process, pipe in children:
            if not pipe.poll(60):
                raise RuntimeError("a client process did not report")
            _, receipts = pipe.recv()
            for index, received in receipts:
                delta = (received - sent_at[index]) / 1e6
                early += delta < 0
                latencies.append(max(delta, 0.0))
            process.join(10)
    finally:
        for process, _ in children:
            if process.is_alive():
                process.kill()
        server.stop()
        if not args.keep:
            try:
                run_python(env, CLEANUP, data["organization_id"])
            except RuntimeError as exc:
                print(f"cleanup failed: {exc}", file=sys.stderr)
        tmp.cleanup()

    expected = connected * events
    print(
        f"delivered {len(latencies)}/{expected} ({len(latencies) / expected:.1%})"
        f"; {early} arrived before the HTTP response was read (counted as 0 ms)"
    )
    print(f"{'latency after HTTP response (ms)':<36} {'p50':>8} {'p99':>8} {'max':>8}")
    print(
        f"{'event receipt, all clients':<36} {percentile(latencies, 50):8.1f}"
        f" {percentile(latencies, 99):8.1f} {max(latencies, default=float('nan')):8.1f}"
    )
    print(
        f"{'POST /api/task-outputs':<36} {statistics.median(http_ms):8.1f}"
        f" {percentile(http_ms, 99):8.1f} {max(http_ms):8.1f}"
    )
    print("target (DESIGN §11): p99 < 250 ms with 1,000 subscribers of one flow")


if __name__ == "__main__":
    main()
