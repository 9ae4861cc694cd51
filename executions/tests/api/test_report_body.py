"""The plain check of a worker's report body agrees with ``TaskExecutionReportInput``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from executions.api.task_execution_schemas import TaskExecutionReportInput, report_body
from executions.tests.api.plain_checks import validated_or_none

FE = str(uuid.uuid4())
BASE: dict[str, Any] = {
    "flow_execution_id": FE,
    "task_name": "a",
    "task_execution_idx": 0,
    "status": "completed",
}


def body(**changes: Any) -> dict[str, Any]:
    data = {**BASE, **changes}
    return {key: value for key, value in data.items() if value is not DROP}


DROP = object()

BODIES = [
    BASE,
    body(output={"n": 1}, input=None, error={"message": "m"}, worker_id="w-1"),
    body(worker_id=None, organization_id=None, modified_by="reviewer"),
    body(organization_id=str(uuid.uuid4()), extra="ignored"),
    body(claim={"executors": ["noop", "python"]}),
    body(claim={"executors": ["noop"], "limit": 50, "other": 1}),
    body(flow_execution_id=FE.replace("-", "")),
    body(flow_execution_id=FE.upper()),
    body(flow_execution_id="{" + FE + "}"),
    body(task_name="é✓ \U0001f600", status=""),
    body(task_name="a" * 200, status="x" * 200, task_execution_idx=2_147_483_647),
    body(status="not-a-status"),
    # refused, or changed by the serializer (the plain check leaves those to it)
    body(flow_execution_id=DROP),
    body(flow_execution_id="nope"),
    body(flow_execution_id=12),
    body(task_name=""),
    body(task_name="a" * 201),
    body(task_name="a\x00"),
    body(task_name="\ud800"),
    body(task_name=12),
    body(task_name=DROP),
    body(task_execution_idx=-1),
    body(task_execution_idx=2_147_483_648),
    body(task_execution_idx="1"),
    body(task_execution_idx=1.0),
    body(task_execution_idx=True),
    body(status=None),
    body(status=DROP),
    body(status="x" * 201),
    body(worker_id=""),
    body(worker_id=" w "),
    body(worker_id="   "),
    body(worker_id=7),
    body(worker_id="w" * 201),
    body(modified_by=None),
    body(modified_by=""),
    body(organization_id="nope"),
    body(organization_id=5),
    body(claim=None),
    body(claim="noop"),
    body(claim={}),
    body(claim={"executors": []}),
    body(claim={"executors": "noop"}),
    body(claim={"executors": [" noop"]}),
    body(claim={"executors": [""]}),
    body(claim={"executors": ["noop"], "limit": 0}),
    body(claim={"executors": ["noop"], "limit": 51}),
    body(claim={"executors": ["noop"], "limit": "2"}),
    body(claim={"executors": ["noop"], "limit": True}),
    body(claim={"executors": [1]}),
    ["not", "an", "object"],
    "text",
]


@pytest.mark.parametrize("data", BODIES)
def test_plain_check_agrees_with_the_serializer(data: Any) -> None:
    plain = report_body(data)
    validated = validated_or_none(TaskExecutionReportInput, data)
    if validated is None:
        assert plain is None
    elif plain is not None:
        assert plain == dict(validated)
        if "claim" in plain:
            assert plain["claim"] == dict(validated["claim"])


def test_the_usual_bodies_take_the_plain_path() -> None:
    for data in BODIES[:12]:
        assert report_body(data) is not None, data
