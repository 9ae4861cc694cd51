"""Schemathesis hooks for the contract fuzz run (``SCHEMATHESIS_HOOKS`` names this module).

- The claim endpoint long-polls up to ``wait_seconds`` (0..30) when nothing is claimable,
  which generated executor names never are: a valid wait is shortened to at most 50 ms so
  the run stays bounded. Out-of-range values (the negative cases) are sent as generated.
- Integers in bodies must fit in 64 bits (the renderer writes no wider ones; the API's
  description says so). JSON Schema cannot say it: ``integer`` covers ``1e30`` as much as
  the thirty-one digits of the same number, and a float of that size is fine. Generated
  integers outside that range are clamped into it, as ``allow-x00 = false`` keeps NUL out.
- Python 3.11 keeps the AST converter's recursion counter per interpreter, not per thread:
  two threads building AST objects at once fail with ``SystemError: AST constructor
  recursion depth mismatch`` (fixed in later CPython releases). Schemathesis' worker threads
  do so through Hypothesis (``ast.parse`` to describe lambdas) and lazy imports (anyio
  compiles its own source): ``ast.parse`` is serialized here, and those modules are imported
  once, up front. Otherwise the run reports errors of whatever operation ran then.

Needs no Django: it runs in the ``st`` process.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

import schemathesis
import schemathesis.transport.asgi  # noqa: F401 - see the module docstring
import schemathesis.transport.wsgi  # noqa: F401

_ast_lock = threading.RLock()
_ast_parse = ast.parse


def _serialized_parse(*args: Any, **kwargs: Any) -> Any:
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _serialized_parse

MAX_CLAIM_WAIT = 0.05


MIN_INTEGER, MAX_INTEGER = -(2**63), 2**64 - 1


def _clamped(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _clamped(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_clamped(child) for child in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, MIN_INTEGER), MAX_INTEGER)
    return value


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Every phase, right before the request is sent (``map_body`` misses some phases)."""
    if isinstance(case.body, dict | list):
        case.body = _clamped(case.body)
    if not case.operation.path.endswith("/task-executions/claim"):
        return
    body = case.body
    if isinstance(body, dict):
        wait = body.get("wait_seconds")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 < wait <= 30:
            body["wait_seconds"] = min(wait, MAX_CLAIM_WAIT)
