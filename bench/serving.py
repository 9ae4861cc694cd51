"""Benchmark: spreading connections over server processes with standard parts.

    .venv/bin/python bench/serving.py [--seconds 20] [--connections 16] [--processes 2]

The worker report create (``bench/task_executions_create.py``'s scenario, on one flow
execution and on 16) served three ways, with the same number of uvicorn processes, measured
interleaved in one run:

- ``shared``: ``bin/serve-prod`` as shipped: one gunicorn master, its processes accepting
  from one listening socket. Each event loop accepts whatever is waiting when it wakes, so
  connections opened together can pile onto one process.
- ``reuseport``: one single-process gunicorn per process, all bound to the same port with
  ``SO_REUSEPORT`` (``--reuse-port``): the kernel hashes each new connection to a socket.
- ``haproxy``: one single-process gunicorn per process, each on its own port, behind
  HAProxy with ``balance leastconn`` (a least-connections proxy, as docs/deploy.md
  describes): each new connection goes to the process holding the fewest.

For each, requests/s, p50/p99 and how the connections ended up over the processes (from
/proc). The figures go into ``bench/README.md``, "Serving".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.task_executions_create import TASKS, create_lua  # noqa: E402

WAYS = ("shared", "reuseport", "haproxy")


@dataclass
class Serving:
    way: str
    url: str
    pids: list[int]  # the uvicorn worker processes


def _env(tag: str) -> dict[str, str]:
    return {
        **harness.flowplatform_env(),
        **harness.connection_env("uvicorn"),
        "PGAPPNAME": f"bench-serving-{tag}",
    }


def _workers_of(masters: list[int]) -> list[int]:
    pids: list[int] = []
    for master in masters:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        pids += [int(pid) for pid in children]
    return pids


@contextlib.contextmanager
def serving(way: str, processes: int) -> Iterator[Serving]:
    with contextlib.ExitStack() as stack:
        if way == "shared":
            server = stack.enter_context(
                harness.running_server(
                    name="fp-shared",
                    app="flowplatform",
                    mode="uvicorn",
                    workers=processes,
                    env=_env("shared"),
                    probe="/healthz",
                )
            )
            yield Serving(way, server.url, _workers_of([server.process.pid]))
            return
        port = harness.free_port()
        servers = []
        for index in range(processes):
            own = port if way == "reuseport" else harness.free_port()
            command = [
                harness.PYTHON, "-m", "gunicorn", "config.asgi:application",
                "-c", "python:config.gunicorn_conf", "--workers", "1",
                "--bind", f"127.0.0.1:{own}", "--backlog", "2048", "--log-level", "warning",
            ]  # fmt: skip
            if way == "reuseport":
                command.append("--reuse-port")
            servers.append(
                stack.enter_context(
                    harness.running_server(
                        name=f"fp-{way}-{index}",
                        app="flowplatform",
                        mode="uvicorn",
                        workers=1,
                        env=_env(way),
                        probe="/healthz",
                        command=command,
                        port=own,
                    )
                )
            )
        pids = _workers_of([server.process.pid for server in servers])
        if way == "reuseport":
            yield Serving(way, f"http://127.0.0.1:{port}", pids)
            return
        front = harness.free_port()
        stack.enter_context(_haproxy(front, [server.url for server in servers]))
        yield Serving(way, f"http://127.0.0.1:{front}", pids)


@contextlib.contextmanager
def _haproxy(port: int, backends: list[str]) -> Iterator[None]:
    binary = shutil.which("haproxy")
    if binary is None:
        raise SystemExit("haproxy is not installed (apt-get install haproxy)")
    lines = [
        "global", "  maxconn 4096",
        "defaults", "  mode http", "  timeout connect 5s", "  timeout client 60s",
        "  timeout server 60s", "  option http-keep-alive",
        "frontend api", f"  bind 127.0.0.1:{port}", "  default_backend servers",
        "backend servers", "  balance leastconn",
        *(f"  server s{i} {url.removeprefix('http://')}" for i, url in enumerate(backends)),
    ]  # fmt: skip
    config = Path(tempfile.mkstemp(prefix="bench-haproxy-", suffix=".cfg")[1])
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([binary, "-f", str(config), "-db"], start_new_session=True)
    try:
        time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.wait(10)
        config.unlink()


def connections_per_process(pids: list[int]) -> list[int]:
    """Established TCP connections each process holds (its sockets in /proc/net/tcp)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01":
                established.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                held += os.readlink(fd) in established
        counts.append(held)
    return counts


def main() -> None:
    parser = harness.http_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    harness.check_wrk()
    harness.setup_django()
    organization, key = harness.new_organization("bench-serving")
    try:
        flow = harness.make_flow(organization, harness.noop_tasks(TASKS))
        executions = [str(harness.start_execution(flow).id) for _ in range(16)]
        rows = []
        for rounds in range(max(1, args.rounds)):
            order = WAYS if rounds % 2 == 0 else tuple(reversed(WAYS))
            for way in order:
                with serving(way, args.processes) as served:
                    for count in (1, 16):
                        lua = create_lua(key, executions[:count])
                        harness.wrk(label="warmup", url=served.url, lua=lua, seconds=2)
                        seconds = max(4, args.seconds / max(1, args.rounds))
                        with ThreadPoolExecutor(1) as pool:
                            running = pool.submit(
                                harness.wrk,
                                label=way,
                                url=served.url,
                                lua=lua,
                                connections=args.connections,
                                seconds=seconds,
                            )
                            time.sleep(seconds / 2)  # mid-run: wrk's connections are open
                            spread = connections_per_process(served.pids)
                            rows.append((way, count, running.result(), spread))
        print(
            f"\n== POST /api/task-executions create, {args.processes} uvicorn processes, "
            f"{args.connections} connections (wrk -t{harness.WRK_THREADS}) =="
        )
        print(f"{'serving':<11} {'flow ex.':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}  spread")
        for way, count, result, spread in rows:
            print(
                f"{way:<11} {count:>8} {result.rps:>7.0f} {result.p50_ms:>7.1f}"
                f" {result.p99_ms:>7.1f}  {'/'.join(map(str, spread))}"
            )
    finally:
        harness.delete_organization(organization)


if __name__ == "__main__":
    main()
