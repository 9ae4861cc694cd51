"""Headless Chromium against the real stack of the e2e suite: uvicorn serving the ASGI app
and a ``python -m executions.worker`` process, both on the test database (so use
``@pytest.mark.django_db(transaction=True)``).

Skips cleanly when the ``playwright`` package or Debian's Chromium (``/usr/bin/chromium``) is
missing; never downloads a browser. Each test gets its own server, worker, browser context
(cookies, offline switch) and a 60 s bound.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from executions.tests.browser.helpers import Stack
from executions.tests.chromium import CHROMIUM, CHROMIUM_ARGS, missing_reason
from executions.tests.e2e.conftest import (  # noqa: F401 - fixtures shared with the e2e suite
    e2e_server,
    start_worker,
)
from executions.tests.e2e.conftest import (
    pytest_collection_modifyitems as e2e_collection_modifyitems,
)
from flowplatform.services import add_member, get_or_create_user

TEST_SECONDS = 60
USERNAME, PASSWORD = "browser-user", "browser-password"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A file test database on SQLite, as for the e2e suite (the server is another process).
    e2e_collection_modifyitems(config, items)
    reason = missing_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def stack(e2e_server: Callable[..., Any], start_worker: Callable[..., Any], tenant: Any) -> Stack:  # noqa: F811
    """A member of ``tenant`` who logs in with a password, the server and one worker."""
    user = get_or_create_user(username=USERNAME)
    # The tests' settings hash with MD5, which the server's settings do not accept; a cheap
    # PBKDF2 hash is one both read.
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsertests", iterations=1000)
    user.save(update_fields=["password"])
    add_member(organization=tenant.organization, user=user)
    server = e2e_server()
    start_worker(server, tenant.service_key)
    return Stack(url=server.url, user_key=tenant.user_key, logs=server.log)


@pytest.fixture
def page(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh Chromium at 1366×768, logged in through the login form, with a 60 s bound.

    Playwright's sync API keeps an event loop marked running on this thread, where Django
    refuses database calls; the browser therefore lives only inside the test, after the
    database fixtures are set up and before they are torn down.
    """
    from playwright.sync_api import sync_playwright

    def overrun(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{request.node.name} took longer than {TEST_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.alarm(TEST_SECONDS)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = chromium.new_context(
                viewport={"width": 1366, "height": 768}, base_url=stack.url
            )
            context.set_default_timeout(20_000)
            tab = context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            try:
                tab.goto("/login?next=/")
                tab.get_by_label("Username").fill(USERNAME)
                tab.get_by_label("Password").fill(PASSWORD)
                tab.get_by_role("button", name="Log in").click()
                tab.wait_for_url(f"{stack.url}/")
                yield tab
                assert not errors, f"JavaScript errors on the page: {errors}"
            finally:
                context.close()
                chromium.close()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
