"""Shared end-to-end fixtures: a real ASGI server (uvicorn) and real worker processes
(``python -m executions.worker``) against the test database.

Use with ``@pytest.mark.e2e`` and ``@pytest.mark.django_db(transaction=True)``, so what the
test writes is committed and the server sees it (and the server's writes are visible here).
On SQLite the test database must be a file both processes open: when e2e tests are
collected and the test database would be in memory, it is moved to a temporary file.

    def test_x(e2e_server, start_worker, tenant):
        server = e2e_server()                      # or e2e_server(lease_seconds=2)
        worker = start_worker(server, tenant.service_key)
        wait_until(lambda: ..., timeout=10)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVER_START_TIMEOUT = 20.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give SQLite a file test database when e2e tests will run (a subprocess cannot open
    the in-memory one)."""
    from django.conf import settings

    if not any(item.get_closest_marker("e2e") for item in items):
        return
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        return
    test = db.setdefault("TEST", {})
    name = test.get("NAME")
    if not name or name == ":memory:" or "mode=memory" in str(name):
        path = Path(tempfile.gettempdir()) / f"flowplatform-e2e-{os.getpid()}.sqlite3"
        test["NAME"] = str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def database_env() -> dict[str, str]:
    """Environment pointing a subprocess at the database the tests use right now."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return {"SQLITE_PATH": str(db["NAME"])}
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return {"DATABASE_URL": f"postgres://{auth}{host}:{port}/{db['NAME']}", "CONN_MAX_AGE": "0"}


def base_env(**extra: str) -> dict[str, str]:
    dropped = ("REDIS_URL", "TEST_DATABASE_NAME", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@dataclass
class ProcessGroup:
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def e2e_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``e2e_server(lease_seconds=30, **env)`` starts uvicorn on a free loopback port."""
    group = ProcessGroup()

    def start(*, lease_seconds: int = 30, **env: str) -> Server:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        command = [
            sys.executable, "-m", "uvicorn", "config.asgi:application",
            "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        environment = base_env(FLOWPLATFORM_LEASE_SECONDS=str(lease_seconds), **env)
        environment.update(database_env())
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        group.processes.append(process)
        server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
        wait_until(lambda: _alive(server), timeout=SERVER_START_TIMEOUT, what="the server")
        return server

    yield start
    group.stop()


def _alive(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited:\n{server.output()}")
    try:
        return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``start_worker(server, key, concurrency=4, worker_id=None, *extra_args)`` runs
    ``python -m executions.worker`` against ``server``; stopped (SIGTERM) at teardown."""
    group = ProcessGroup()

    def start(
        server: Server,
        key: str,
        *extra: str,
        concurrency: int = 4,
        worker_id: str | None = None,
    ) -> subprocess.Popen:
        index = len(group.processes)
        command = [
            sys.executable, "-m", "executions.worker",
            "--url", server.url, "--key", key,
            "--concurrency", str(concurrency),
            "--wait-seconds", "2",
            "--shutdown-grace-seconds", "1",
            "--log-level", "WARNING",
            "--python-callable", "executions.worker.examples:fail",
            "--python-callable", "executions.worker.examples:add",
            *extra,
        ]  # fmt: skip
        if worker_id:
            command += ["--worker-id", worker_id]
        log = tmp_path / f"worker-{index}.log"
        process = subprocess.Popen(
            command, cwd=ROOT, env=base_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        group.processes.append(process)
        return process

    yield start
    group.stop()
