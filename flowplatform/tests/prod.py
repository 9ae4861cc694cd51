"""The production topology in tests: ``bin/serve-prod`` servers and ``python -m
executions.worker`` workers on loopback, against the test database and Redis.

Every process is started in its own session (process group) and killed, group and all, at
fixture teardown if a test left it running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from executions.tests.e2e.conftest import base_env, database_env, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVE_PROD = ROOT / "bin" / "serve-prod"
SECRET_KEY = "flowplatform-e2e-production-secret"


@dataclass
class Process:
    name: str
    process: subprocess.Popen
    log: Path

    def output(self, tail: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


@dataclass
class ProdServer(Process):
    url: str = ""
    metrics_dir: Path = field(default_factory=Path)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"})

    def metrics(self) -> dict[tuple[str, str], float]:
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=10).text)

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def parse_metrics(text: str) -> dict[tuple[str, str], float]:
    """``{(name, 'label="value",...'): value}`` of a Prometheus text answer."""
    values: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name, _, labels = key.partition("{")
            values[(name, labels.rstrip("}"))] = float(value)
    return values


def server_environment(*, workers: int, port: int, metrics_dir: Path, **extra: str) -> dict:
    env = base_env(
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY=str(workers),
        GRACEFUL_TIMEOUT="10",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        PYTHONWARNINGS="ignore",
    )
    env.update(database_env())
    env.pop("CONN_MAX_AGE", None)  # persistent connections, as in production
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    env.update(extra)
    return env


class Topology:
    """Starts servers and workers; ``stop_all()`` (fixture teardown) SIGTERMs, then
    SIGKILLs, every process group still running."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Process] = []

    def _launch(self, name: str, command: list[str], env: dict[str, str]) -> tuple[Any, Path]:
        log = self.tmp_path / f"{name}.log"
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return process, log

    def server(self, name: str, *, workers: int = 1, **extra: str) -> ProdServer:
        """``bin/serve-prod`` with ``workers`` uvicorn processes on a free loopback port."""
        port = free_port()
        metrics_dir = self.tmp_path / f"metrics-{name}"
        env = server_environment(workers=workers, port=port, metrics_dir=metrics_dir, **extra)
        process, log = self._launch(name, [str(SERVE_PROD)], env)
        server = ProdServer(name, process, log, url=f"http://127.0.0.1:{port}")
        server.metrics_dir = metrics_dir
        self.started.append(server)
        return server

    def worker(self, name: str, server: ProdServer, key: str, *args: str) -> Process:
        command = [
            sys.executable, "-m", "executions.worker",
            "--url", server.url, "--key", key,
            "--wait-seconds", "5",
            "--log-level", "INFO",
            *args,
        ]  # fmt: skip
        process, log = self._launch(name, command, base_env())
        worker = Process(name, process, log)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for item in self.started:
            if item.process.poll() is None:
                os.killpg(item.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for item in self.started:
            try:
                item.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(item.process.pid, signal.SIGKILL)
                item.process.wait(timeout=5)


def wait_ready(*servers: ProdServer, timeout: float = 30) -> None:
    def ready(server: ProdServer) -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.name} exited:\n{server.output()}")
        try:
            return httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    for server in servers:
        wait_until(lambda s=server: ready(s), timeout=timeout, what=f"{server.name} ready")


class Watcher(threading.Thread):
    """A WebSocket client of ``/ws/flows/{flow_id}`` that records every event id it gets
    and the close code."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.subscribed = threading.Event()
        self.last_event_id: int | None = None
        self.event_ids: list[int] = []
        self.events: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.error: BaseException | None = None
        self._stop_reading = threading.Event()
        self._ws: ClientConnection | None = None

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=10, max_size=None) as ws:
                self._ws = ws
                first = json.loads(ws.recv(timeout=10))
                assert first["type"] == "subscribed", first
                self.last_event_id = first["last_event_id"]
                self.subscribed.set()
                while not self._stop_reading.is_set():
                    try:
                        frame = json.loads(ws.recv(timeout=0.2))
                    except TimeoutError:
                        continue
                    if frame.get("type") == "event":
                        self.event_ids.append(frame["id"])
                        self.events.append(frame)
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else None
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.subscribed.set()

    def stop(self) -> None:
        self._stop_reading.set()
        self.join(timeout=10)
