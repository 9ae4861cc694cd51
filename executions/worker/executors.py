"""Built-in task executors and the registry that lets other ones be plugged in.

An executor is a plain function ``(params, context) -> ExecutorResult``: ``params`` is the
task's input as the server resolved it, validated against the executor's JSON Schema first.
Anything an executor raises becomes a ``failed`` task whose error type is the exception's
class name, hence the small, explicit exception classes below.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
from jsonschema.exceptions import SchemaError

from executions.worker.payloads import ClaimedTask
from executions.worker.specs import BUILTIN_EXECUTORS, EXECUTOR_NAME_PATTERN, JSONSchema

DEFAULT_HTTP_TIMEOUT_SECONDS = 30.0
# Responses are kept in the task's output, which lives in the database and is sent to
# browsers: cap what is read instead of letting one download exhaust the worker's memory.
MAX_RESPONSE_BYTES = 5_000_000
MAX_ERRORS_PER_ROW = 20


class ExecutorError(Exception):
    """Base of the failures executors raise on purpose; the class name is the error type."""


class InvalidParameters(ExecutorError):
    """The task's input does not match the executor's parameter schema."""


class UnknownExecutor(ExecutorError):
    """No executor of that name is registered in this worker."""


class NotRunnable(ExecutorError):
    """The executor exists but a worker must never run it (``human_review``)."""


class CallableNotAllowed(ExecutorError):
    """A ``python`` task named a callable missing from the worker's allow-list."""


class CallableNotFound(ExecutorError):
    """An allow-listed ``module:function`` does not resolve to a callable."""


class HTTPStatusError(ExecutorError):
    """An HTTP executor got a status code outside the expected ones."""


class ValidationFailed(ExecutorError):
    """``validate`` with ``fail_on_invalid`` found invalid rows."""


class OutputNotSerializable(ExecutorError):
    """The executor produced something that is not JSON (or NaN/Infinity)."""


@dataclass(frozen=True)
class ExecutorResult:
    """What an executor produced: ``output`` feeds downstream tasks, ``summary`` is the
    small displayable digest stored in the task output (``None`` means ``{}``)."""

    output: Any = None
    summary: Any = None


class ExecutionContext:
    """What an executor may use besides its parameters.

    ``stop_event`` is set when the worker stops waiting for the task (cancellation,
    timeout, lost lease, shutdown).  Python cannot kill a thread, so long-running
    executors should sleep through ``sleep()`` or poll ``stopped`` to end early.
    """

    def __init__(
        self,
        *,
        stop_event: threading.Event | None = None,
        python_callables: Iterable[str] = (),
        task: ClaimedTask | None = None,
    ) -> None:
        self.stop_event = stop_event or threading.Event()
        self.python_callables = frozenset(python_callables)
        self.task = task

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; return ``True`` when the full time elapsed."""
        return not self.stop_event.wait(max(0.0, seconds))


ExecutorFn = Callable[[Any, ExecutionContext], ExecutorResult]


def ensure_json(value: Any, what: str) -> None:
    """Refuse values the API could not store: the report would otherwise fail with a
    422 after the work was done, and the task would be retried for nothing."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise OutputNotSerializable(f"the executor's {what} is not JSON: {exc}") from exc


def _describe_errors(errors: Iterable[jsonschema.ValidationError]) -> str:
    ordered = sorted(errors, key=lambda error: error.json_path)
    lines = [f"{error.json_path}: {error.message}" for error in ordered[:10]]
    if len(ordered) > 10:
        lines.append(f"... and {len(ordered) - 10} more")
    return "; ".join(lines)


@dataclass(frozen=True)
class RegisteredExecutor:
    name: str
    fn: ExecutorFn
    parameters_schema: JSONSchema | None = None
    claimable: bool = True
    validator: Any = field(default=None, repr=False, compare=False)

    def validate(self, params: Any) -> None:
        if self.validator is None:
            return
        errors = list(self.validator.iter_errors(params))
        if errors:
            raise InvalidParameters(
                f"invalid parameters for {self.name}: {_describe_errors(errors)}"
            )


class ExecutorRegistry:
    """Executors this worker can run, by ``task_executor_name``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executors: dict[str, RegisteredExecutor] = {}

    def register(
        self,
        name: str,
        fn: ExecutorFn,
        *,
        parameters_schema: JSONSchema | None = None,
        claimable: bool = True,
        replace: bool = False,
    ) -> None:
        """Add an executor.  Replacing one (built-ins included) must be asked for, so a
        plugin cannot shadow ``python`` or ``http_request`` by accident."""
        if not re.fullmatch(EXECUTOR_NAME_PATTERN, name):
            raise ValueError(f"invalid executor name {name!r} (pattern {EXECUTOR_NAME_PATTERN})")
        validator = None
        if parameters_schema is not None:
            cls = jsonschema.validators.validator_for(parameters_schema)
            cls.check_schema(parameters_schema)
            validator = cls(parameters_schema)
        entry = RegisteredExecutor(name, fn, parameters_schema, claimable, validator)
        with self._lock:
            if name in self._executors and not replace:
                raise ValueError(f"executor {name!r} is already registered")
            self._executors[name] = entry

    def get(self, name: str) -> RegisteredExecutor:
        with self._lock:
            entry = self._executors.get(name)
        if entry is None:
            raise UnknownExecutor(f"this worker has no executor named {name!r}")
        return entry

    def names(self, *, claimable_only: bool = True) -> list[str]:
        with self._lock:
            entries = list(self._executors.values())
        return [entry.name for entry in entries if entry.claimable or not claimable_only]

    def copy(self) -> ExecutorRegistry:
        clone = ExecutorRegistry()
        with self._lock:
            clone._executors = dict(self._executors)
        return clone

    def run(self, name: str, params: Any, context: ExecutionContext) -> ExecutorResult:
        """Validate ``params``, run the executor, and check its result is storable."""
        entry = self.get(name)
        if params is None and entry.parameters_schema is not None:
            params = {}  # a task declared without parameters
        entry.validate(params)
        result = entry.fn(params, context)
        if not isinstance(result, ExecutorResult):
            result = ExecutorResult(output=result)
        ensure_json(result.output, "output")
        ensure_json(result.summary, "summary")
        return result


# -- the built-ins -----------------------------------------------------------------


def run_noop(params: dict[str, Any], context: ExecutionContext) -> ExecutorResult:
    """Return ``output`` (or the parameters themselves) after an optional, interruptible
    sleep: the building block of demos, benchmarks and engine tests."""
    if params.get("sleep_seconds"):
        context.sleep(float(params["sleep_seconds"]))
    output = params["output"] if "output" in params else params
    return ExecutorResult(output=output, summary={})


def run_transform(params: dict[str, Any], context: ExecutionContext) -> ExecutorResult:
    """The server already rendered the template's placeholders; the result is the output."""
    return ExecutorResult(output=params["template"], summary={})


def _response_output(response: httpx.Response, body: bytes, truncated: bool) -> dict[str, Any]:
    output: dict[str, Any] = {
        "status_code": response.status_code,
        "headers": dict(response.headers.items()),
    }
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type.endswith(("/json", "+json"))
    if is_json and body and not truncated:
        try:
            output["json"] = json.loads(body)
            return output
        except ValueError:
            pass
    output["text"] = body.decode(response.encoding or "utf-8", errors="replace")
    if truncated:
        output["truncated"] = True
    return output


def _send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    params: Mapping[str, Any] | None = None,
    content: bytes | str | None = None,
) -> tuple[dict[str, Any], int]:
    """One request, body read up to ``MAX_RESPONSE_BYTES``; returns (output, status)."""
    started = time.perf_counter()
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        request = client.build_request(method, url, headers=headers, params=params, content=content)
        response = client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size, truncated = 0, False
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    truncated = True
                    break
            body = b"".join(chunks)[:MAX_RESPONSE_BYTES]
        finally:
            response.close()
    output = _response_output(response, body, truncated)
    output["elapsed_ms"] = round((time.perf_counter() - started) * 1000)
    return output, response.status_code


def _json_headers(headers: Mapping[str, str]) -> dict[str, str]:
    merged = dict(headers)
    if not any(key.lower() == "content-type" for key in merged):
        merged["Content-Type"] = "application/json"
    return merged


def _status_error(method: str, url: str, output: dict[str, Any], expected: str) -> HTTPStatusError:
    snippet = json.dumps(output.get("json")) if "json" in output else output.get("text", "")
    return HTTPStatusError(
        f"{method} {url} answered {output['status_code']}, expected {expected}: {snippet[:500]}"
    )


def run_http_request(params: dict[str, Any], context: ExecutionContext) -> ExecutorResult:
    """One HTTP request; fails on an unexpected status (default: anything but 2xx/3xx)."""
    if "json" in params and "body" in params:
        raise InvalidParameters("give either 'json' or 'body', not both")
    method = params.get("method", "GET")
    headers: dict[str, str] = dict(params.get("headers") or {})
    content: str | None = None
    if "json" in params:
        content = json.dumps(params["json"])
        headers = _json_headers(headers)
    elif "body" in params:
        content = params["body"]
    output, status = _send(
        method,
        params["url"],
        headers=headers,
        params=params.get("params"),
        content=content,
        timeout=float(params.get("timeout_seconds", DEFAULT_HTTP_TIMEOUT_SECONDS)),
    )
    expected = params.get("expected_status")
    if expected is None and not 200 <= status < 400:
        raise _status_error(method, params["url"], output, "2xx or 3xx")
    if expected is not None and status not in expected:
        raise _status_error(method, params["url"], output, f"one of {expected}")
    summary = {"status_code": status, "response_time_ms": output["elapsed_ms"]}
    return ExecutorResult(output=output, summary=summary)


def run_webhook_notification(params: dict[str, Any], context: ExecutionContext) -> ExecutorResult:
    """Send ``payload`` as JSON; anything but 2xx is a failed notification."""
    method = params.get("method", "POST")
    output, status = _send(
        method,
        params["url"],
        headers=_json_headers(params.get("headers") or {}),
        content=json.dumps(params.get("payload", {})),
        timeout=float(params.get("timeout_seconds", DEFAULT_HTTP_TIMEOUT_SECONDS)),
    )
    if not 200 <= status < 300:
        raise _status_error(method, params["url"], output, "2xx")
    output.pop("headers", None)
    summary = {"status_code": status, "response_time_ms": output["elapsed_ms"]}
    return ExecutorResult(output=output, summary=summary)


def run_validate(params: dict[str, Any], context: ExecutionContext) -> ExecutorResult:
    """Split ``rows`` into valid and invalid ones against ``schema``."""
    schema = params["schema"]
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise InvalidParameters(f"'schema' is not a valid JSON Schema: {exc.message}") from exc
    validator = cls(schema)
    valid: list[Any] = []
    invalid: list[dict[str, Any]] = []
    for index, row in enumerate(params["rows"]):
        errors = sorted(validator.iter_errors(row), key=lambda error: error.json_path)
        if not errors:
            valid.append(row)
            continue
        details = [{"path": e.json_path, "message": e.message} for e in errors]
        invalid.append({"index": index, "row": row, "errors": details[:MAX_ERRORS_PER_ROW]})
    if invalid and params.get("fail_on_invalid", False):
        raise ValidationFailed(
            f"{len(invalid)} of {len(valid) + len(invalid)} rows are invalid; "
            f"first (row {invalid[0]['index']}): {invalid[0]['errors'][0]['message']}"
        )
    summary = {"valid_rows": len(valid), "invalid_rows": len(invalid)}
    return ExecutorResult(output={"valid": valid, "invalid": invalid}, summary=summary)


def run_python(params: dict[str, Any], context: ExecutionContext) -> ExecutorResult:
    """Call an allow-listed ``module:function`` with ``kwargs``.

    The allow-list is the worker's (its settings/CLI), not the flow's: flow authors must
    not be able to run arbitrary code on worker machines.
    """
    target: str = params["callable"]
    if target not in context.python_callables:
        raise CallableNotAllowed(f"{target!r} is not in this worker's python callable allow-list")
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise CallableNotFound(f"{target!r} does not name a callable")
    return ExecutorResult(output=function(**params.get("kwargs", {})), summary={})


def run_human_review(params: Any, context: ExecutionContext) -> ExecutorResult:
    raise NotRunnable(
        "human_review tasks wait in awaiting_input for a person's PUT; a worker never runs them"
    )


_BUILTIN_FUNCTIONS: dict[str, ExecutorFn] = {
    "noop": run_noop,
    "http_request": run_http_request,
    "transform": run_transform,
    "validate": run_validate,
    "python": run_python,
    "webhook_notification": run_webhook_notification,
    "human_review": run_human_review,
}


def builtin_registry() -> ExecutorRegistry:
    """A fresh registry holding the built-ins, schemas taken from ``specs``."""
    registry = ExecutorRegistry()
    for name, spec in BUILTIN_EXECUTORS.items():
        registry.register(
            name,
            _BUILTIN_FUNCTIONS[name],
            parameters_schema=spec.parameters_schema,
            claimable=spec.claimable,
        )
    return registry


default_registry = builtin_registry()


def register_executor(
    name: str,
    fn: ExecutorFn,
    *,
    parameters_schema: JSONSchema | None = None,
    replace: bool = False,
) -> None:
    """Plug an external executor into the default registry (used by ``--plugin`` modules)."""
    default_registry.register(name, fn, parameters_schema=parameters_schema, replace=replace)
