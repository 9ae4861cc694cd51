"""Small callables for the ``python`` executor, meant to be allow-listed in demos and tests.

Allow-list them by name (``--python-callable executions.worker.examples:add`` or
``FLOWPLATFORM_PYTHON_CALLABLES``); none of them is reachable from a flow otherwise.
"""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn


def add(a: float, b: float) -> float:
    """The smallest useful computation: checks kwargs travel and outputs feed downstream."""
    return a + b


def echo(**kwargs: Any) -> dict[str, Any]:
    """Return the keyword arguments: shows what the server resolved for the task."""
    return kwargs


def fail(message: str = "example failure") -> NoReturn:
    """Always raise, to exercise failure reporting, retries and resume-from-failure."""
    raise RuntimeError(message)


def crash() -> NoReturn:
    """Kill the worker process outright (no report, no release), as an OOM kill would:
    crash tests use it to show the server recovers the task by lease expiry."""
    os._exit(137)


def sleep(seconds: float) -> dict[str, float]:
    """Block for ``seconds`` (not interruptible), to exercise timeouts and leases."""
    time.sleep(seconds)
    return {"slept": seconds}
