"""Shared benchmark plumbing: start servers on loopback, drive them with wrk, print tables.

Everything is bounded: servers are started on free loopback ports and killed on exit, and
each load run has a fixed duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"

WRK_REPORT = """
done = function(summary, latency, requests)
  io.write("WRKJSON ")
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_command(*, app: str, mode: str, port: int, workers: int) -> list[str]:
    """``app`` is a dotted module prefix (``flowplatform`` or ``bench.floor``)."""
    if mode == "gunicorn":
        return [
            PYTHON,
            "-m",
            "gunicorn",
            f"{app}.wsgi:application",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            "--keep-alive",
            "5",
        ]
    if mode == "uvicorn":
        return [
            PYTHON,
            "-m",
            "uvicorn",
            f"{app}.asgi:application",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
        ]
    raise ValueError(mode)


@contextlib.contextmanager
def running_server(
    *, app: str, mode: str, workers: int, env: dict[str, str], probe: str = "/"
) -> Iterator[Server]:
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    process = subprocess.Popen(
        server_command(app=app, mode=mode, port=port, workers=workers),
        cwd=ROOT,
        env=full_env,
        start_new_session=True,
    )
    server = Server(process, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(server.url + probe, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} server did not start") from None
                time.sleep(0.2)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class LoadResult:
    label: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(
    *, label: str, url: str, lua: str, connections: int = 16, seconds: int = 10, threads: int = 2
) -> LoadResult:
    """Run wrk with ``lua`` (which sets ``request``/``wrk.*``) plus a JSON report."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + WRK_REPORT)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return LoadResult(
        label=label,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["non2xx"],
    )


def print_table(rows: list[LoadResult], *, baseline: LoadResult | None = None) -> None:
    print(
        f"{'benchmark':<52} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs floor':>9}"
    )
    for row in rows:
        ratio = f"{row.rps / baseline.rps:8.0%}" if baseline and baseline.rps else ""
        print(
            f"{row.label:<52} {row.rps:9.0f} {row.p50_ms:8.1f} {row.p99_ms:8.1f} "
            f"{row.errors:7d} {ratio:>9}"
        )


def lua_string(value: str) -> str:
    return json.dumps(value)
