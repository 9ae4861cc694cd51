"""A person's view of the flow execution page: headless Chromium against a real server.

Starts ``manage.py runserver`` on a free port over a file SQLite database prepared here,
drives a realistic execution through the public API, logs in as staff through the admin's
login form and saves ``test-artifacts/admin_flow_execution.png``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from executions.tests.admin.showcase import STAFF_PASSWORD, STAFF_USERNAME, drive
from executions.tests.chromium import CHROMIUM, CHROMIUM_ARGS, missing_reason

pytestmark = pytest.mark.browser

BASE_DIR = Path(settings.BASE_DIR)
ARTIFACTS = BASE_DIR / "test-artifacts"
SCREENSHOT = ARTIFACTS / "admin_flow_execution.png"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SQLITE_PATH=str(tmp_path / "admin-screenshot.sqlite3"),
        DEBUG="true",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict]]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    env = _env(tmp_path)
    _manage(env, "migrate", "--noinput", "-v", "0")
    out = _manage(
        env,
        "shell",
        "-c",
        "import json; from executions.tests.admin.showcase import prepare;"
        " print('SETUP ' + json.dumps(prepare()))",
    )
    setup = json.loads(next(line for line in out.splitlines() if line.startswith("SETUP "))[6:])
    port = _free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, tmp_path / "server.log")
        yield base, setup
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_up(base: str, process: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/admin/login/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"server did not start: {log.read_text()[-3000:]}")


def test_flow_execution_page_in_chromium(server):  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    base, setup = server
    ids = drive(base, setup)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            page.goto(f"{base}/admin/login/?next=/admin/")
            page.fill("#id_username", STAFF_USERNAME)
            page.fill("#id_password", STAFF_PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/admin/")

            page.goto(f"{base}/admin/executions/flowexecution/{ids['acme']}/change/")
            assert "Customer import (acme)" in page.content()
            # Statuses read as text in badges, styled by the admin stylesheet.
            badge = page.locator(".field-status_display .fp-badge").first
            assert badge.inner_text().strip().endswith("stale")
            assert badge.evaluate("e => getComputedStyle(e).borderTopLeftRadius") == "10px"
            # The execution's records are inline, read-only.
            body = page.inner_text("body")
            for heading in ("TASK EXECUTIONS", "TASK OUTPUTS", "TASK STATUS HISTORY"):
                assert heading in body.upper(), heading
            for task in ("fetch", "extract", "validate", "publish"):
                assert task in body
            assert page.locator("pre.fp-json").count() >= 4
            assert page.locator("button", has_text="Re-execute stale tasks").count() == 1
            assert not failed, failed
            page.screenshot(path=str(SCREENSHOT))
            page.screenshot(path=str(ARTIFACTS / "admin_flow_execution_full.png"), full_page=True)

            page.goto(f"{base}/admin/executions/flowexecution/")
            rows = page.inner_text("#result_list")
            assert "acme" in rows and "globex" in rows
            page.screenshot(path=str(ARTIFACTS / "admin_flow_execution_list.png"))
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
