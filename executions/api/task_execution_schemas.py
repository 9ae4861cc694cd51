"""Input and output serializers of the task-execution endpoints (seeds 002, 003, 004) and the
worker protocol. Output serializers only describe, for OpenAPI, the dicts that
``executions.representations`` and the engine render."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.enums import TASK_REPORTABLE, TaskExecutionStatus
from flowplatform.pagination import PageQuery

MAX_INDEX = 2_147_483_647


def _json(**kwargs) -> serializers.JSONField:  # noqa: ANN003
    return serializers.JSONField(required=False, allow_null=True, **kwargs)


# -- inputs -----------------------------------------------------------------------------------


# The statuses are documented as an enum (what a client may send) while the field stays text:
# another value is answered 400 ``bad_request`` by the service (seeds 002/003), not 422.
@extend_schema_field({"type": "string", "enum": sorted(TASK_REPORTABLE)})
class ReportStatusField(serializers.CharField):
    pass


@extend_schema_field(
    {"type": "string", "enum": [s for s in TaskExecutionStatus.values if s != "deleted"]}
)
class EditStatusField(serializers.CharField):
    pass


class ClaimNextInput(serializers.Serializer):
    executors = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=200), min_length=1, max_length=100
    )
    limit = serializers.IntegerField(required=False, default=1, min_value=1, max_value=50)


class TaskExecutionReportInput(serializers.Serializer):
    flow_execution_id = serializers.UUIDField()
    task_name = serializers.CharField(min_length=1, max_length=200, trim_whitespace=False)
    task_execution_idx = serializers.IntegerField(min_value=0, max_value=MAX_INDEX)
    status = ReportStatusField(
        max_length=200,
        allow_blank=True,
        trim_whitespace=False,
        help_text="queued, running, completed, failed or cancelled (400 otherwise).",
    )
    input = _json()
    output = _json()
    error = _json(help_text="{message, type, traceback} when failed.")
    worker_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=200,
        help_text="The reporting worker; while the execution runs it must hold the lease.",
    )
    organization_id = serializers.UUIDField(required=False, allow_null=True)
    modified_by = serializers.CharField(required=False, max_length=200)
    claim = ClaimNextInput(
        required=False,
        help_text="Service keys: also claim up to `limit` queued task executions for "
        "`worker_id`, decided with the report (the next work of a worker whose task just "
        "ended, without a claim request). They come back in the response's `claimed`.",
    )


class TaskExecutionEditInput(serializers.Serializer):
    id = serializers.UUIDField()
    flow_execution_id = serializers.UUIDField(required=False)
    task_name = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
    task_execution_idx = serializers.IntegerField(required=False, min_value=0, max_value=MAX_INDEX)
    organization_id = serializers.UUIDField(required=False, allow_null=True)
    status = EditStatusField(
        required=False,
        max_length=200,
        trim_whitespace=False,
        help_text="completed, failed or cancelled (or the current status); 400 otherwise.",
    )
    input = _json()
    output = _json()
    error = _json()
    modified_by = serializers.CharField(required=False, max_length=200)
    updated_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Optimistic lock: must equal the stored value (409 otherwise). Omitted or "
        "null: last write wins.",
    )


class TaskExecutionEditQuery(serializers.Serializer):
    execute_flow = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Queue the tasks the edit makes stale again (dependency order).",
    )
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Change nothing; answer which tasks would go stale.",
    )


class TaskExecutionListQuery(PageQuery):
    flow_execution_id = serializers.UUIDField(required=False)
    task_name = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
    task_execution_idx = serializers.IntegerField(required=False, min_value=0, max_value=MAX_INDEX)
    status = serializers.ChoiceField(required=False, choices=TaskExecutionStatus.choices)


class TaskStatusItem(serializers.Serializer):
    task_name = serializers.CharField(min_length=1, max_length=255, trim_whitespace=False)
    status = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=50,
        default=None,
        trim_whitespace=False,
        help_text="Any text up to 50 characters, or null; kept as reported.",
    )


class TaskStatusBatchInput(serializers.Serializer):
    statuses = serializers.ListField(child=TaskStatusItem(), min_length=1, max_length=100)


def status_items(data: Any) -> list[tuple[str, str | None]] | None:
    """The ``(task_name, status)`` pairs of a valid ``TaskStatusBatchInput`` body, checked
    with a plain loop (a hundred items through the nested serializer cost more than the
    whole batch's insert); None when anything is off, and ``parse`` with the serializer then
    reports exactly what (the same body passes both or neither)."""
    if not isinstance(data, dict):
        return None
    items = data.get("statuses")
    if type(items) is not list or not 1 <= len(items) <= 100:
        return None
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        if type(item) is not dict:
            return None
        task_name = item.get("task_name")
        status = item.get("status")
        if not (_plain_text(task_name) and 1 <= len(task_name) <= 255):
            return None
        if status is not None and not (_plain_text(status) and len(status) <= 50):
            return None
        pairs.append((task_name, status))
    return pairs


_REPORT_TEXT = (("worker_id", True), ("modified_by", False))  # (field, may be null)


def report_body(data: Any) -> dict[str, Any] | None:
    """A valid ``TaskExecutionReportInput`` body as the serializer would return it, checked
    with plain code (the serializer's fields cost a worker's report about a sixth of its
    CPU); None when anything is unusual, and ``parse`` with the serializer then answers
    (the same body passes both or neither, with the same data)."""
    if type(data) is not dict:
        return None
    try:
        body: dict[str, Any] = {"flow_execution_id": _uuid(data["flow_execution_id"])}
    except (KeyError, ValueError):
        return None
    task_name, idx, status = (
        data.get("task_name"),
        data.get("task_execution_idx"),
        data.get("status"),
    )
    if not (_plain_text(task_name) and 1 <= len(task_name) <= 200):
        return None
    if type(idx) is not int or not 0 <= idx <= MAX_INDEX:
        return None
    if not (_plain_text(status) and len(status) <= 200):
        return None
    body.update(task_name=task_name, task_execution_idx=idx, status=status)
    for name in ("input", "output", "error"):
        if name in data:
            body[name] = data[name]
    for name, nullable in _REPORT_TEXT:
        if name in data:
            value = data[name]
            if value is None and nullable:
                body[name] = None
            elif _trimmed_text(value, 200):
                body[name] = value
            else:
                return None
    if data.get("organization_id") is not None:
        try:
            body["organization_id"] = _uuid(data["organization_id"])
        except ValueError:
            return None
    elif "organization_id" in data:
        body["organization_id"] = None
    if "claim" in data:
        claim = _claim_next(data["claim"])
        if claim is None:
            return None
        body["claim"] = claim
    return body


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str:
        raise ValueError(value)
    return uuid.UUID(value)


def _trimmed_text(value: Any, max_length: int) -> bool:
    """Text a default ``CharField`` keeps as it is (not blank, nothing to trim)."""
    return _plain_text(value) and 1 <= len(value) <= max_length and value.strip() == value


def _claim_next(value: Any) -> dict[str, Any] | None:
    if type(value) is not dict:
        return None
    executors, limit = value.get("executors"), value.get("limit", 1)
    if type(executors) is not list or not 1 <= len(executors) <= 100:
        return None
    if not all(_trimmed_text(name, 200) for name in executors):
        return None
    if type(limit) is not int or not 1 <= limit <= 50:
        return None
    return {"executors": executors, "limit": limit}


def _plain_text(value: Any) -> bool:
    """A JSON string that DRF's ``CharField`` keeps as it is: no NUL character, no
    surrogate code point."""
    if type(value) is not str or "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


class ClaimInput(serializers.Serializer):
    worker_id = serializers.CharField(min_length=1, max_length=200)
    executors = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=200), min_length=1, max_length=100
    )
    limit = serializers.IntegerField(required=False, default=1, min_value=1, max_value=50)
    wait_seconds = serializers.FloatField(required=False, default=0, min_value=0, max_value=30)


class WorkerInput(serializers.Serializer):
    worker_id = serializers.CharField(min_length=1, max_length=200)


# -- outputs ----------------------------------------------------------------------------------


class TaskExecutionOut(serializers.Serializer):
    id = serializers.UUIDField()
    organization_id = serializers.UUIDField()
    flow_execution_id = serializers.UUIDField()
    task_name = serializers.CharField()
    task_execution_idx = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TaskExecutionStatus.choices)
    input = serializers.JSONField(allow_null=True)
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    modified_by = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    edited_status = serializers.CharField()
    stale_status = serializers.CharField()
    stale_reason = serializers.JSONField(allow_null=True)
    task_executor_name = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField()
    max_attempts = serializers.IntegerField()


class TaskExecutionEditOut(TaskExecutionOut):
    would_mark_stale = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Dry runs only: the tasks the edit would mark stale, in dependency order.",
    )


class TaskStatusOut(serializers.Serializer):
    id = serializers.UUIDField()
    organization_id = serializers.UUIDField()
    flow_execution_id = serializers.UUIDField()
    task_name = serializers.CharField()
    status = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class ClaimedTaskOut(TaskExecutionOut):
    lease_expires_at = serializers.DateTimeField()
    lease_seconds = serializers.IntegerField()
    timeout_seconds = serializers.FloatField(allow_null=True)
    flow_id = serializers.UUIDField()


class ClaimOut(serializers.Serializer):
    task_executions = ClaimedTaskOut(many=True)


class TaskExecutionReportOut(TaskExecutionOut):
    claimed = ClaimedTaskOut(
        many=True,
        required=False,
        help_text="Only when the report asked to `claim`: what it claimed (possibly none).",
    )


class HeartbeatOut(serializers.Serializer):
    lease_expires_at = serializers.DateTimeField()
    cancel_requested = serializers.BooleanField()


class ExecutorOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    parameters_schema = serializers.JSONField()
    claimable = serializers.BooleanField()
    summary_fields = serializers.ListField(child=serializers.CharField())
