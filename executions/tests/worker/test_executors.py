"""The built-in executors, run through the registry exactly as the worker runs them.

HTTP executors talk to a real server on 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from executions.worker import executors
from executions.worker.executors import (
    CallableNotAllowed,
    ExecutionContext,
    ExecutorRegistry,
    ExecutorResult,
    HTTPStatusError,
    InvalidParameters,
    NotRunnable,
    OutputNotSerializable,
    UnknownExecutor,
    ValidationFailed,
    builtin_registry,
)

from .servers import EchoHandler, serve

ALLOWED = ("executions.worker.examples:add", "executions.worker.examples:fail")


@pytest.fixture
def registry() -> ExecutorRegistry:
    return builtin_registry()


@pytest.fixture
def ctx() -> ExecutionContext:
    return ExecutionContext(python_callables=ALLOWED)


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with serve(EchoHandler) as url:
        yield url


def run(
    registry: ExecutorRegistry, name: str, params: Any, ctx: ExecutionContext
) -> ExecutorResult:
    return registry.run(name, params, ctx)


# -- noop / transform ------------------------------------------------------------------


def test_noop_returns_output_parameter(registry: ExecutorRegistry, ctx: ExecutionContext) -> None:
    result = run(registry, "noop", {"output": {"a": [1, 2]}}, ctx)
    assert result.output == {"a": [1, 2]}
    assert result.summary == {}


def test_noop_without_output_echoes_params_and_accepts_null_input(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    assert run(registry, "noop", {"x": 1}, ctx).output == {"x": 1}
    assert run(registry, "noop", None, ctx).output == {}


def test_noop_sleep_is_interrupted_by_stop(registry: ExecutorRegistry) -> None:
    stop = threading.Event()
    ctx = ExecutionContext(stop_event=stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    result = run(registry, "noop", {"sleep_seconds": 30, "output": 7}, ctx)
    assert time.monotonic() - started < 1.0
    assert result.output == 7


def test_transform_returns_rendered_template(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    template = {"title": "resolved by the server", "items": [1, None, True]}
    assert run(registry, "transform", {"template": template}, ctx).output == template


# -- validation of parameters --------------------------------------------------------


def test_invalid_parameters_are_refused_before_running(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    with pytest.raises(InvalidParameters, match="'url' is a required property"):
        run(registry, "http_request", {"method": "GET"}, ctx)
    with pytest.raises(InvalidParameters, match="template"):
        run(registry, "transform", {"nope": 1}, ctx)
    with pytest.raises(InvalidParameters):
        run(registry, "noop", ["not", "an", "object"], ctx)


def test_unknown_and_human_review_executors_fail_clearly(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    with pytest.raises(UnknownExecutor):
        run(registry, "no_such_executor", {}, ctx)
    with pytest.raises(NotRunnable, match="awaiting_input"):
        run(registry, "human_review", {}, ctx)
    assert "human_review" not in registry.names(claimable_only=True)


# -- validate ------------------------------------------------------------------------

ROW_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "email": {"type": "string"}},
    "required": ["id"],
}


def test_validate_splits_rows(registry: ExecutorRegistry, ctx: ExecutionContext) -> None:
    rows = [{"id": 1}, {"id": "x"}, {"email": "a@b"}, {"id": 2, "email": "c@d"}]
    result = run(registry, "validate", {"rows": rows, "schema": ROW_SCHEMA}, ctx)
    assert result.summary == {"valid_rows": 2, "invalid_rows": 2}
    assert result.output["valid"] == [{"id": 1}, {"id": 2, "email": "c@d"}]
    invalid = result.output["invalid"]
    assert [item["index"] for item in invalid] == [1, 2]
    assert invalid[0]["row"] == {"id": "x"}
    assert invalid[0]["errors"][0]["path"] == "$.id"
    assert "required" in invalid[1]["errors"][0]["message"]


def test_validate_fail_on_invalid(registry: ExecutorRegistry, ctx: ExecutionContext) -> None:
    params = {"rows": [{"id": 1}, {}], "schema": ROW_SCHEMA, "fail_on_invalid": True}
    with pytest.raises(ValidationFailed, match="1 of 2 rows are invalid"):
        run(registry, "validate", params, ctx)
    params["rows"] = [{"id": 1}]
    assert run(registry, "validate", params, ctx).summary == {"valid_rows": 1, "invalid_rows": 0}


def test_validate_rejects_a_broken_schema(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    with pytest.raises(InvalidParameters, match="not a valid JSON Schema"):
        run(registry, "validate", {"rows": [1], "schema": {"type": "nonsense"}}, ctx)


# -- python --------------------------------------------------------------------------


def test_python_calls_allow_listed_callable(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    params = {"callable": "executions.worker.examples:add", "kwargs": {"a": 2, "b": 3}}
    result = run(registry, "python", params, ctx)
    assert result.output == 5
    assert result.summary == {}


def test_python_refuses_callables_outside_the_allow_list(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    with pytest.raises(CallableNotAllowed):
        run(registry, "python", {"callable": "os:getcwd"}, ctx)
    with pytest.raises(CallableNotAllowed):
        run(registry, "python", {"callable": "executions.worker.examples:crash"}, ctx)


def test_python_errors_and_non_json_results_fail(
    registry: ExecutorRegistry, ctx: ExecutionContext
) -> None:
    params = {"callable": "executions.worker.examples:fail", "kwargs": {"message": "boom"}}
    with pytest.raises(RuntimeError, match="boom"):
        run(registry, "python", params, ctx)
    registry.register("bad-output", lambda params, ctx: ExecutorResult(output={1, 2}))
    with pytest.raises(OutputNotSerializable):
        run(registry, "bad-output", {}, ctx)
    registry.register("nan", lambda params, ctx: ExecutorResult(output=float("nan")))
    with pytest.raises(OutputNotSerializable):
        run(registry, "nan", {}, ctx)


# -- registry ------------------------------------------------------------------------


def test_external_executors_can_be_registered(ctx: ExecutionContext) -> None:
    registry = builtin_registry()
    schema = {"type": "object", "required": ["n"]}
    registry.register(
        "acme.double",
        lambda p, c: ExecutorResult(p["n"] * 2, {"n": p["n"]}),
        parameters_schema=schema,
    )
    assert run(registry, "acme.double", {"n": 4}, ctx) == ExecutorResult(8, {"n": 4})
    with pytest.raises(InvalidParameters):
        run(registry, "acme.double", {}, ctx)
    # A bare return value is accepted too, as the output (lenient for plugins).
    registry.register("plain", lambda p, c: [1, 2])  # type: ignore[arg-type,return-value]
    assert run(registry, "plain", None, ctx).output == [1, 2]
    with pytest.raises(ValueError, match="already registered"):
        registry.register("noop", lambda p, c: ExecutorResult())
    with pytest.raises(ValueError, match="invalid executor name"):
        registry.register("Bad Name", lambda p, c: ExecutorResult())


# -- http_request / webhook_notification --------------------------------------------


def test_http_request_get_json(
    registry: ExecutorRegistry, ctx: ExecutionContext, echo_url: str
) -> None:
    params = {"url": f"{echo_url}/echo", "params": {"q": "x"}, "headers": {"X-Test": "1"}}
    result = run(registry, "http_request", params, ctx)
    out = result.output
    assert out["status_code"] == 200
    assert out["json"]["method"] == "GET"
    assert out["json"]["query"] == {"q": ["x"]}
    assert out["json"]["headers"]["x-test"] == "1"
    assert out["headers"]["content-type"] == "application/json"
    assert isinstance(out["elapsed_ms"], int)
    assert result.summary == {"status_code": 200, "response_time_ms": out["elapsed_ms"]}


def test_http_request_sends_json_or_raw_body(
    registry: ExecutorRegistry, ctx: ExecutionContext, echo_url: str
) -> None:
    params = {"method": "POST", "url": f"{echo_url}/echo", "json": {"k": [1, 2]}}
    echoed = run(registry, "http_request", params, ctx).output["json"]
    assert echoed["json"] == {"k": [1, 2]}
    params = {"method": "PUT", "url": f"{echo_url}/echo", "body": "raw text"}
    echoed = run(registry, "http_request", params, ctx).output["json"]
    assert (echoed["method"], echoed["body"]) == ("PUT", "raw text")
    with pytest.raises(InvalidParameters, match="not both"):
        run(registry, "http_request", {**params, "json": {}}, ctx)


def test_http_request_text_response(
    registry: ExecutorRegistry, ctx: ExecutionContext, echo_url: str
) -> None:
    out = run(registry, "http_request", {"url": f"{echo_url}/text"}, ctx).output
    assert out["text"] == "hello, worker"
    assert "json" not in out


def test_http_request_status_policy(
    registry: ExecutorRegistry, ctx: ExecutionContext, echo_url: str
) -> None:
    with pytest.raises(HTTPStatusError, match="answered 404"):
        run(registry, "http_request", {"url": f"{echo_url}/status/404"}, ctx)
    assert run(registry, "http_request", {"url": f"{echo_url}/status/302"}, ctx)
    params = {"url": f"{echo_url}/status/404", "expected_status": [404]}
    assert run(registry, "http_request", params, ctx).summary["status_code"] == 404
    with pytest.raises(HTTPStatusError):
        params = {"url": f"{echo_url}/status/200", "expected_status": [201]}
        run(registry, "http_request", params, ctx)


def test_http_request_timeout_and_size_cap(
    registry: ExecutorRegistry,
    ctx: ExecutionContext,
    echo_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        run(registry, "http_request", {"url": f"{echo_url}/slow", "timeout_seconds": 0.2}, ctx)
    monkeypatch.setattr(executors, "MAX_RESPONSE_BYTES", 5)
    out = run(registry, "http_request", {"url": f"{echo_url}/text"}, ctx).output
    assert out == {**out, "text": "hello", "truncated": True}


def test_webhook_notification_posts_json(
    registry: ExecutorRegistry, ctx: ExecutionContext, echo_url: str
) -> None:
    params = {"url": f"{echo_url}/echo", "payload": {"event": "done"}, "method": "PATCH"}
    result = run(registry, "webhook_notification", params, ctx)
    echoed = result.output["json"]
    assert echoed["method"] == "PATCH"
    assert echoed["json"] == {"event": "done"}
    assert echoed["headers"]["content-type"] == "application/json"
    assert result.summary == {"status_code": 200, "response_time_ms": result.output["elapsed_ms"]}


def test_webhook_notification_fails_on_non_2xx(
    registry: ExecutorRegistry, ctx: ExecutionContext, echo_url: str
) -> None:
    with pytest.raises(HTTPStatusError, match="answered 302"):
        run(registry, "webhook_notification", {"url": f"{echo_url}/status/302"}, ctx)
    with pytest.raises(HTTPStatusError, match="answered 500"):
        run(registry, "webhook_notification", {"url": f"{echo_url}/status/500"}, ctx)
    with pytest.raises(InvalidParameters):
        run(registry, "webhook_notification", {"url": f"{echo_url}/echo", "method": "GET"}, ctx)
