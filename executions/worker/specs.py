"""The catalogue of built-in task executors and their parameter schemas.

Pure data shared by the server (flow validation, ``GET /api/task-executors``) and the
worker (which runs them).  It imports nothing from Django so the worker can stay an
HTTP-only client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSONSchema = dict[str, Any]


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    description: str
    parameters_schema: JSONSchema
    # ``human_review`` tasks wait for a person; no worker ever claims them.
    claimable: bool = True
    summary_fields: tuple[str, ...] = field(default_factory=tuple)


_HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_URL = {"type": "string", "minLength": 1, "maxLength": 2048}
_HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}
_TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": 300}

NOOP = ExecutorSpec(
    name="noop",
    description="Does nothing; its output is the `output` parameter (or its resolved input).",
    parameters_schema={
        "type": "object",
        "properties": {
            "output": {"description": "Returned as the task's output."},
            "sleep_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
        },
        "additionalProperties": True,
    },
)

HTTP_REQUEST = ExecutorSpec(
    name="http_request",
    description="Performs one HTTP request; output {status_code, headers, json|text}.",
    parameters_schema={
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": _HTTP_METHODS, "default": "GET"},
            "url": _URL,
            "headers": _HEADERS,
            "params": {"type": "object"},
            "json": {"description": "JSON request body."},
            "body": {"type": "string", "description": "Raw request body."},
            "timeout_seconds": _TIMEOUT,
            "expected_status": {
                "type": "array",
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "minItems": 1,
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    summary_fields=("status_code", "response_time_ms"),
)

TRANSFORM = ExecutorSpec(
    name="transform",
    description="Renders `template` (any JSON) over the flow input and upstream outputs.",
    parameters_schema={
        "type": "object",
        "properties": {"template": {"description": "Any JSON value with placeholders."}},
        "required": ["template"],
        "additionalProperties": False,
    },
)

VALIDATE = ExecutorSpec(
    name="validate",
    description="Validates each row against a JSON Schema; output lists valid and invalid rows.",
    parameters_schema={
        "type": "object",
        "properties": {
            "rows": {"type": "array"},
            "schema": {"type": "object"},
            "fail_on_invalid": {"type": "boolean", "default": False},
        },
        "required": ["rows", "schema"],
        "additionalProperties": False,
    },
    summary_fields=("valid_rows", "invalid_rows"),
)

PYTHON = ExecutorSpec(
    name="python",
    description="Calls an allow-listed Python callable `module:function` with keyword arguments.",
    parameters_schema={
        "type": "object",
        "properties": {
            "callable": {
                "type": "string",
                "pattern": r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
            },
            "kwargs": {"type": "object"},
        },
        "required": ["callable"],
        "additionalProperties": False,
    },
)

WEBHOOK_NOTIFICATION = ExecutorSpec(
    name="webhook_notification",
    description="POSTs a JSON payload to a URL; fails on a non-2xx answer.",
    parameters_schema={
        "type": "object",
        "properties": {
            "url": _URL,
            "payload": {"description": "JSON body sent."},
            "headers": _HEADERS,
            "method": {"type": "string", "enum": ["POST", "PUT", "PATCH"], "default": "POST"},
            "timeout_seconds": _TIMEOUT,
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    summary_fields=("status_code", "response_time_ms"),
)

HUMAN_REVIEW = ExecutorSpec(
    name="human_review",
    description="Waits in `awaiting_input` until a person submits the output with PUT.",
    parameters_schema={
        "type": "object",
        "properties": {
            "instructions": {"type": "string", "maxLength": 10000},
            "output_schema": {"type": "object"},
        },
        "additionalProperties": False,
    },
    claimable=False,
)

BUILTIN_EXECUTORS: dict[str, ExecutorSpec] = {
    spec.name: spec
    for spec in (
        NOOP,
        HTTP_REQUEST,
        TRANSFORM,
        VALIDATE,
        PYTHON,
        WEBHOOK_NOTIFICATION,
        HUMAN_REVIEW,
    )
}

EXECUTOR_NAME_PATTERN = r"^[a-z][a-z0-9_.-]*$"
