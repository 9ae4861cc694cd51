"""``python -m executions.worker``: flags, real signals in a real process, and no Django."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executions.worker.cli import UsageError, add_worker_arguments, config_from_args

from .fake_api import KEY, FakeApi, fake_api

ROOT = Path(__file__).resolve().parents[3]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_worker_arguments(parser)
    return parser.parse_args(argv)


def test_flags_become_a_config() -> None:
    args = parse(
        "--url",
        "http://api:8000",
        "--key",
        "k",
        "--executors",
        "noop, transform",
        "--concurrency",
        "8",
        "--wait-seconds",
        "5",
        "--worker-id",
        "w-1",
        "--python-callable",
        "pkg.mod:f",
        "--python-callable",
        "pkg.mod:g",
        "--shutdown-grace-seconds",
        "12",
    )
    config = config_from_args(args, extra_python_callables=["settings.mod:h", "pkg.mod:f"])
    assert config.url == "http://api:8000" and config.key == "k" and config.worker_id == "w-1"
    assert config.executors == ("noop", "transform")
    assert (config.concurrency, config.wait_seconds, config.shutdown_grace_seconds) == (8, 5, 12)
    assert config.python_callables == ("settings.mod:h", "pkg.mod:f", "pkg.mod:g")


def test_key_and_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWPLATFORM_WORKER_KEY", "env-key")
    monkeypatch.setenv("FLOWPLATFORM_URL", "http://env:1")
    config = config_from_args(parse())
    assert (config.key, config.url, config.executors) == ("env-key", "http://env:1", None)
    monkeypatch.delenv("FLOWPLATFORM_WORKER_KEY")
    monkeypatch.delenv("FLOWPLATFORM_URL")
    assert parse().url == "http://127.0.0.1:8000"
    with pytest.raises(UsageError, match="key is required"):
        config_from_args(parse())


@pytest.mark.parametrize(
    "argv",
    [
        ("--concurrency", "0"),
        ("--wait-seconds", "31"),
        ("--python-callable", "nocolon"),
        ("--url", "ftp://x"),
    ],
)
def test_bad_flags_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        config_from_args(parse("--key", "k", *argv))


def test_the_worker_package_never_imports_django() -> None:
    code = (
        "import sys, executions.worker.cli, executions.worker.runner, executions.worker.examples;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=20)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as api:
        yield api


def start_worker(api: FakeApi, grace: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLOWPLATFORM_WORKER_KEY": KEY}
    argv = [
        sys.executable,
        "-m",
        "executions.worker",
        "--url",
        api.url,
        "--concurrency",
        "1",
        "--wait-seconds",
        "0.1",
        "--shutdown-grace-seconds",
        str(grace),
        "--log-level",
        "WARNING",
    ]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE)


def test_sigterm_releases_the_running_task_and_exits_0(api: FakeApi) -> None:
    task_id = api.add_task("long", "noop", {"sleep_seconds": 30})
    process = start_worker(api, grace=0.2)
    try:
        # A heartbeat: the worker holds the task (it posts no "running" status).
        assert api.wait_for(lambda: ("heartbeat", "long", "") in api.events, timeout=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, process.stderr and process.stderr.read()
    finally:
        process.kill()
    assert api.releases == [task_id]
    assert api.reports == []


def test_a_second_signal_exits_without_waiting_for_the_grace(api: FakeApi) -> None:
    task_id = api.add_task("long", "noop", {"sleep_seconds": 30})
    process = start_worker(api, grace=60)
    try:
        # A heartbeat: the worker holds the task (it posts no "running" status).
        assert api.wait_for(lambda: ("heartbeat", "long", "") in api.events, timeout=10)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert process.poll() is None  # the first signal waits for the task
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0, process.stderr and process.stderr.read()
    finally:
        process.kill()
    assert api.releases == [task_id]
