"""Debian's Chromium driven by Playwright: where it is and how the browser tests launch it."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("FLOWPLATFORM_CHROMIUM", "/usr/bin/chromium")
# Headless in a container: no sandbox or GPU, no /dev/shm, and nothing phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    return None
