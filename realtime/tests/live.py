"""Real uvicorn server processes for end-to-end tests and benchmarks (loopback only).

``LiveServer`` starts ``uvicorn config.asgi:application`` on a free loopback port with
the production settings module and the given environment; ``server_env`` points it at a
database and a Redis URL; ``seed_data`` creates an organization, keys, a flow and a flow
execution through a helper process that uses the same environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database described by a Django settings dict."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def server_env(*, database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TEST_DATABASE_NAME", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        DEBUG="true",
        LOG_LEVEL="INFO",
        LOG_FORMAT="text",
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def run_manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


SEED_SCRIPT = """
import json, uuid
import django
django.setup()
from flowplatform import tenancy
tenancy.bypass_process()  # a setup script sees every organization, like a management command
from flowplatform.services import create_api_key, create_organization, get_or_create_user
from realtime.tests.factories import make_execution, make_flow

suffix = uuid.uuid4().hex[:10]
org = create_organization(name=f"live-{suffix}")
user = get_or_create_user(username=f"live-{suffix}")
_, user_key = create_api_key(organization=org, kind="user", user=user)
_, service_key = create_api_key(organization=org, kind="service")
flow = make_flow(org)
execution = make_execution(flow)
print(json.dumps({
    "organization_id": str(org.id), "flow_id": str(flow.id),
    "flow_execution_id": str(execution.id), "user_key": user_key, "service_key": service_key,
}))
"""


def seed_data(env: dict[str, str]) -> dict[str, str]:
    """An organization with a user key and a service key, a flow and one flow execution."""
    result = subprocess.run(
        [sys.executable, "-c", SEED_SCRIPT],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class LiveServer:
    """One uvicorn process serving the ASGI application on 127.0.0.1."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int = 1,
        log_level: str = "info",
        extra_args: tuple = (),
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.log_level = log_level
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> LiveServer:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--lifespan",
            "off",
            "--log-level",
            self.log_level,
            "--no-use-colors",
            *(["--workers", str(self.workers)] if self.workers > 1 else []),
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
