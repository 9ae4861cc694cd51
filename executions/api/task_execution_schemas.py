"""Input and output serializers of the task-execution endpoints (seeds 002, 003, 004) and the
worker protocol. Output serializers only describe, for OpenAPI, the dicts that
``executions.representations`` and the engine render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.enums import TASK_REPORTABLE, TaskExecutionStatus
from executions.representations import TASK_EXECUTION, TASK_STATUS
from flowplatform.fields import Body, Field
from flowplatform.pagination import PageQuery

MAX_INDEX = 2_147_483_647


def _json(**kwargs) -> serializers.JSONField:  # noqa: ANN003
    return serializers.JSONField(required=False, allow_null=True, **kwargs)


# -- inputs -----------------------------------------------------------------------------------


REPORT = Body(
    "TaskExecutionReportInput",
    [
        Field("flow_execution_id", "uuid", required=True),
        Field("task_name", "text", required=True, min_length=1, max_length=200, trim=False),
        Field("task_execution_idx", "integer", required=True, minimum=0, maximum=MAX_INDEX),
        # Documented as an enum, checked by the engine: another value is a 400 (seed 002).
        Field(
            "status",
            "text",
            required=True,
            max_length=200,
            trim=False,
            enum=sorted(TASK_REPORTABLE),
            help_text="queued, running, completed, failed or cancelled (400 otherwise).",
        ),
        Field("input", "json"),
        Field("output", "json"),
        Field("error", "json", help_text="{message, type, traceback} when failed."),
        Field(
            "worker_id",
            "text",
            nullable=True,
            max_length=200,
            help_text="The reporting worker. While the execution is leased, only its lease "
            "holder's report changes it (409 otherwise); a person edits it with PUT.",
        ),
        Field("organization_id", "uuid", nullable=True),
        Field("modified_by", "text", max_length=200),
        Field(
            "claim",
            "object",
            fields=[
                Field(
                    "executors",
                    "list",
                    required=True,
                    min_length=1,
                    max_length=100,
                    item=Field("executor", "text", max_length=200),
                ),
                Field("limit", "integer", default=1, minimum=1, maximum=50),
            ],
            help_text="Service keys: also claim up to `limit` queued task executions for "
            "`worker_id`, once the report is stored (the next work of a worker whose task "
            "just ended, without a claim request). They come back in the response's "
            "`claimed`.",
        ),
    ],
)


@extend_schema_field(
    {"type": "string", "enum": [s for s in TaskExecutionStatus.values if s != "deleted"]}
)
class EditStatusField(serializers.CharField):
    """Documented as an enum; the engine answers another value with 400 (seed 003)."""


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


STATUS_BATCH = Body(
    "TaskStatusBatchInput",
    [
        Field(
            "statuses",
            "list",
            required=True,
            min_length=1,
            max_length=100,
            item=Field(
                "TaskStatusItem",
                "object",
                fields=[
                    Field(
                        "task_name", "text", required=True, min_length=1, max_length=255, trim=False
                    ),
                    Field(
                        "status",
                        "text",
                        nullable=True,
                        default=None,
                        max_length=50,
                        trim=False,
                        help_text="Any text up to 50 characters, or null; kept as reported.",
                    ),
                ],
            ),
        )
    ],
)


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


TaskExecutionOut = TASK_EXECUTION.serializer()


class TaskExecutionEditOut(TaskExecutionOut):
    would_mark_stale = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Dry runs only: the tasks the edit would mark stale, in dependency order.",
    )


TaskStatusOut = TASK_STATUS.serializer()


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
