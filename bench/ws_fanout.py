"""Benchmark: WebSocket fan-out latency (DESIGN §11: 1,000 subscribers of one flow receive an
event with p99 < 250 ms after the HTTP response that caused it).

Not a test: it prints figures. Run from the repository root with Redis and PostgreSQL up::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/ws_fanout.py --clients 1000 --events 20

What it does, all bounded and on loopback only (at most 5,000 clients and 500 events, every
connection, request and wait has a timeout, the server is stopped on exit):

1. Raises this process's open-file limit to its hard limit (``resource.setrlimit``; client
   processes and the server inherit it). Migrates the database (``DATABASE_URL``, or a
   temporary SQLite file with ``--sqlite``), and creates an organization ``bench-ws-…`` with
   keys, a flow and a flow execution (deleted at the end unless ``--keep``).
2. Starts the server the documented production way (``--server prod``, the default:
   ``bin/serve-prod``, a gunicorn master with ``--workers`` uvicorn processes, the Redis
   channel layer, ``DEBUG=false``), or plain ``uvicorn`` (``--server uvicorn``).
   ``--deflate`` serves with per-message deflate (``WS_PER_MESSAGE_DEFLATE=true``);
   ``--server-root DIR`` serves another checkout (before/after comparisons; the
   ``bin/serve-prod`` of a checkout that predates ``WS_PER_MESSAGE_DEFLATE`` compresses).
3. Connects ``--clients`` WebSocket clients to ``/ws/flows/<flow_id>``, spread over
   ``--client-procs`` processes, and waits until all have their ``subscribed`` frame. The
   clients are minimal (an asyncio protocol that parses frames and notes the time a chunk
   arrived; JSON is decoded after the run) and offer ``permessage-deflate`` like browsers do:
   the server decides. Each reports its CPU time during the events, to show it kept up.
4. ``--events`` times: ``POST /api/task-outputs`` with a service key (one ``task_output.*``
   event each), noting the monotonic clock when the request went out and when the response
   arrived, then waiting ``--interval`` seconds. The monotonic clock is system-wide on Linux,
   so comparable across processes.
5. Prints, over every (client, event) pair, p50 / p99 / max latency from the HTTP response to
   receipt (the target's measure) and from the request; per event, the spread between its
   first and last receipt (the fan-out itself); the HTTP latency; the CPU the server and
   the clients used during the events. ``--py-spy DIR`` records every server worker during
   the events (``py-spy record --nonblocking``, collapsed stacks, needs py-spy installed).

The client machine is the server machine: on a 2-core box the clients compete with the server
for CPU, so the figures are an upper bound of what a separate client fleet would see.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime.tests.live import free_port, run_manage, server_env  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_CLIENTS = 5000
MAX_EVENTS = 500
CLK_TCK = os.sysconf("SC_CLK_TCK")

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


class _Client(asyncio.Protocol):
    """One WebSocket client: handshake, then every text frame kept as (arrival ns, payload).

    Server frames are unmasked and never fragmented by uvicorn; pings are answered (uvicorn
    closes a client that does not pong within its ping timeout).
    """

    def __init__(self, host: str, target: str, frames: list[tuple[int, bytes]]) -> None:
        self.host = host
        self.target = target
        self.frames = frames
        self.buffer = bytearray()
        self.upgraded = False
        self.inflater: Any = None
        self.fresh_inflater = False
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.target} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        )
        self.transport.write(request.encode())  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before subscribing"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buffer += data
        if not self.upgraded and not self._handshake():
            return
        buffer = self.buffer
        while len(buffer) >= 2:
            first, length = buffer[0], buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            opcode = first & 0x0F
            if first & 0x40:  # RSV1: compressed with permessage-deflate
                if self.fresh_inflater:
                    self.inflater = zlib.decompressobj(-15)
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            if opcode == 0x1:
                self.frames.append((now, payload))
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif opcode == 0x9:  # ping → pong, masked with a zero key
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)  # type: ignore[union-attr]
            elif opcode == 0x8:
                self.transport.close()  # type: ignore[union-attr]
                return

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").lower()
        del self.buffer[: end + 4]
        if not head.startswith("http/1.1 101"):
            self.transport.close()  # type: ignore[union-attr]
            return False
        self.upgraded = True
        for line in head.split("\r\n"):
            if line.startswith("sec-websocket-extensions:") and "permessage-deflate" in line:
                self.inflater = zlib.decompressobj(-15)
                self.fresh_inflater = "server_no_context_takeover" in line
        return True

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def client_process(port: int, target: str, count: int, conn: Any) -> None:
    """Connect ``count`` clients, report readiness, collect frames until told to stop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_clients(port, target, count, conn))


async def _clients(port: int, target: str, count: int, conn: Any) -> None:
    import orjson

    loop = asyncio.get_running_loop()
    frames: list[tuple[int, bytes]] = []
    clients: list[_Client] = []
    failures = 0
    host = f"127.0.0.1:{port}"

    async def open_one() -> None:
        nonlocal failures
        for _ in range(3):
            try:
                connecting = loop.create_connection(
                    lambda: _Client(host, target, frames), "127.0.0.1", port
                )
                _, client = await asyncio.wait_for(connecting, timeout=30)
                await asyncio.wait_for(client.subscribed, timeout=30)
                clients.append(client)
                return
            except Exception:  # noqa: BLE001 - retried, then counted
                await asyncio.sleep(0.2)
        failures += 1

    for start in range(0, count, 100):  # at most 100 handshakes in flight
        await asyncio.gather(*(open_one() for _ in range(min(100, count - start))))
    conn.send(("ready", len(clients), failures))
    await loop.run_in_executor(None, conn.recv)  # "go"
    wall, usage = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    await loop.run_in_executor(None, conn.recv)  # "stop"
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    wall = time.monotonic() - wall
    for client in clients:
        client.close()
    receipts = []
    for received, payload in frames:
        message = orjson.loads(payload)
        summary = (message.get("data") or {}).get("summary") or {}
        if message.get("type") == "event" and "bench" in summary:
            receipts.append((summary["bench"], received))
    conn.send(("receipts", receipts, cpu, wall))


# -- the server ----------------------------------------------------------------------------------


def start_server(
    *, kind: str, root: Path, env: dict[str, str], workers: int, deflate: bool, log: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(env, WS_PER_MESSAGE_DEFLATE="true" if deflate else "false")
    if kind == "prod":
        command = [str(root / "bin" / "serve-prod"), "--log-level", "warning"]
        env.update(
            BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY=str(workers),
            VENV=str(Path(sys.executable).parent.parent),
            PYTHONPATH=str(root),
        )
    else:
        command = [
            sys.executable, "-m", "uvicorn", "config.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
            "--log-level", "warning", "--no-access-log",
            "--ws-per-message-deflate", "true" if deflate else "false",
            *(["--workers", str(workers)] if workers > 1 else []),
        ]  # fmt: skip
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                if len(worker_pids(process.pid)) >= workers:
                    return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')[-4000:]}")


def stop_server(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def worker_pids(pid: int) -> list[int]:
    """The processes serving requests: the master's children (its own pid if it has none)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in children] or [pid]


def cpu_seconds(pids: list[int], *, main_thread: bool = False) -> tuple[float, float]:
    """User and system CPU time of the processes, or of their main threads (where the event
    loop runs: the WebSocket fan-out, not the request threads' views nor the event sender)."""
    user = system = 0
    for pid in pids:
        path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
        with contextlib.suppress(OSError):
            fields = Path(path).read_text().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def socket_count(pid: int) -> int:
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(fd.path).startswith("socket:")
    return count


# -- the run -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def row(label: str, values: list[float]) -> str:
    return (
        f"{label:<40} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f}"
        f" {max(values, default=float('nan')):8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between events")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes (WEB_CONCURRENCY, default 2)"
    )
    parser.add_argument("--server", choices=("prod", "uvicorn"), default="prod")
    parser.add_argument("--server-root", type=Path, default=ROOT, help="checkout to serve")
    parser.add_argument("--deflate", action="store_true", help="serve with per-message deflate")
    parser.add_argument("--py-spy", type=Path, help="record the server workers into this folder")
    parser.add_argument("--sqlite", action="store_true", help="temporary SQLite file database")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's rows")
    args = parser.parse_args()
    clients = max(1, min(args.clients, MAX_CLIENTS))
    events = max(1, min(args.events, MAX_EVENTS))
    procs = max(1, min(args.client_procs, clients))
    root = args.server_root.resolve()

    fd_limit = raise_fd_limit()
    if fd_limit < clients + 256:
        sys.exit(f"open-file limit {fd_limit} is too low for {clients} clients")
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.py_spy and not Path(py_spy).exists():
        sys.exit("--py-spy needs py-spy: .venv/bin/pip install py-spy")
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
        LOG_FORMAT="json",
    )
    run_manage(env, "migrate", "-v", "0")
    data = json.loads(run_python(env, SEED).strip().splitlines()[-1])
    print(
        f"ws fan-out: {clients} clients in {procs} process(es), {events} events every"
        f" {args.interval}s, {'bin/serve-prod' if args.server == 'prod' else 'uvicorn'}"
        f" x{args.workers}{'' if root == ROOT else f' from {root}'}, Redis channel layer,"
        f" database {'SQLite' if args.sqlite else 'PostgreSQL'},"
        f" per-message deflate {'on' if args.deflate else 'off'}, fd limit {fd_limit}"
    )
    log = Path(tmp.name) / "server.log"
    server, port = start_server(
        kind=args.server, root=root, env=env, workers=args.workers, deflate=args.deflate, log=log
    )
    children: list[tuple[Any, Any]] = []
    spies: list[subprocess.Popen] = []
    try:
        target = f"/ws/flows/{data['flow_id']}?token={data['user_key']}"
        ctx = mp.get_context("spawn")
        started = time.monotonic()
        for index in range(procs):
            share = clients // procs + (1 if index < clients % procs else 0)
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=client_process, args=(port, target, share, child), daemon=True
            )
            process.start()
            children.append((process, parent))
        connected = failed = 0
        for _, pipe in children:
            if not pipe.poll(300):
                raise RuntimeError("clients did not connect within 300 s")
            _, ok, bad = pipe.recv()
            connected, failed = connected + ok, failed + bad
        workers = worker_pids(server.pid)
        spread = ", ".join(str(socket_count(pid)) for pid in workers)
        print(
            f"connected {connected} clients in {time.monotonic() - started:.1f}s ({failed}"
            f" failed); sockets per server process: {spread}"
        )

        duration = events * args.interval + 2
        if args.py_spy:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            for pid in workers:
                spies.append(
                    subprocess.Popen(
                        [
                            py_spy,
                            "record",
                            "--pid",
                            str(pid),
                            "--duration",
                            str(int(duration) + 1),
                            "--rate",
                            "250",
                            "--nonblocking",
                            "--format",
                            "raw",
                            "--output",
                            str(args.py_spy / f"worker-{pid}.txt"),
                        ],  # fmt: skip
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1)
        for _, pipe in children:
            pipe.send("go")
        cpu_before, wall_before = sum(cpu_seconds([server.pid, *workers])), time.monotonic()
        loop_before = cpu_seconds(workers, main_thread=True)
        requested_at: dict[int, int] = {}
        answered_at: dict[int, int] = {}
        http_ms: list[float] = []
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {data['service_key']}"},
            timeout=30,
        ) as http:
            for i in range(events):
                body = {
                    "flow_execution_id": data["flow_execution_id"],
                    "task_name": "abc"[i % 3],
                    "summary": {"bench": i},
                }
                requested_at[i] = time.monotonic_ns()
                response = http.post("/api/task-outputs", json=body)
                answered_at[i] = time.monotonic_ns()
                http_ms.append((answered_at[i] - requested_at[i]) / 1e6)
                response.raise_for_status()
                time.sleep(args.interval)
        time.sleep(2)  # stragglers
        server_cpu = sum(cpu_seconds([server.pid, *workers])) - cpu_before
        loop_after = cpu_seconds(workers, main_thread=True)
        loop_user, loop_system = (loop_after[0] - loop_before[0]), (loop_after[1] - loop_before[1])
        loop_cpu = loop_user + loop_system
        server_wall = time.monotonic() - wall_before

        after_response: list[float] = []
        after_request: list[float] = []
        by_event: dict[int, list[int]] = {}
        client_cpu: list[tuple[float, float]] = []
        early = 0
        for _, pipe in children:
            pipe.send("stop")
        for process, pipe in children:
            if not pipe.poll(60):
                raise RuntimeError("a client process did not report")
            _, receipts, cpu, wall = pipe.recv()
            client_cpu.append((cpu, wall))
            for index, received in receipts:
                delta = (received - answered_at[index]) / 1e6
                early += delta < 0
                after_response.append(max(delta, 0.0))
                after_request.append((received - requested_at[index]) / 1e6)
                by_event.setdefault(index, []).append(received)
            process.join(10)
    finally:
        for process, _ in children:
            if process.is_alive():
                process.kill()
        for spy in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        stop_server(server)
        if not args.keep:
            try:
                run_python(env, CLEANUP, data["organization_id"])
            except RuntimeError as exc:
                print(f"cleanup failed: {exc}", file=sys.stderr)
        tmp.cleanup()

    expected = connected * events
    spreads = [(max(times) - min(times)) / 1e6 for times in by_event.values()]
    print(
        f"delivered {len(after_response)}/{expected} ({len(after_response) / expected:.1%})"
        f"; {early} arrived before the HTTP response was read (counted as 0 ms)"
    )
    print(f"{'latency (ms)':<40} {'p50':>8} {'p99':>8} {'max':>8}")
    print(row("event receipt, all clients", after_response))
    print(row("event receipt after the request was sent", after_request))
    print(row("per event: first to last receipt", spreads))
    print(row("POST /api/task-outputs", http_ms))
    client_share = ", ".join(f"{cpu / wall:.0%}" for cpu, wall in client_cpu)
    print(
        f"CPU during the events ({server_wall:.1f}s): server {server_cpu:.2f}s"
        f" ({server_cpu / server_wall:.0%} of one core), {server_cpu / events * 1000:.0f} ms per"
        f" event, of which the event loops {loop_cpu / events * 1000:.0f} ms"
        f" ({loop_cpu / events / max(connected, 1) * 1e6:.0f} µs per subscriber,"
        f" {loop_system / max(loop_cpu, 1e-9):.0%} of it in the kernel);"
        f" client processes {client_share} of one core each"
    )
    if args.py_spy:
        print(f"profiles (py-spy raw, collapsed stacks): {args.py_spy}/worker-*.txt")
    print(
        "target (DESIGN §11): p99 < 250 ms with 1,000 subscribers of one flow"
        f" (median over the events: {statistics.median(http_ms):.1f} ms per POST)"
    )


if __name__ == "__main__":
    main()
