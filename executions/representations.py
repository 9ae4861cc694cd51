"""How flows, executions and task records look on the wire (API responses, events and the
OpenAPI schema): one field table per resource (``flowplatform.representation``)."""

from __future__ import annotations

from rest_framework import serializers

from executions.enums import (
    EditedStatus,
    FlowExecutionStatus,
    FlowStatus,
    StaleStatus,
    TaskExecutionStatus,
)
from flowplatform.representation import JSON_KIND, TIME_KIND, UUID_KIND, VALUE_KIND, Out, Renderer

S = serializers


class RetriesOut(S.Serializer):
    max_attempts = S.IntegerField()
    backoff_seconds = S.FloatField()
    backoff_factor = S.FloatField()


class TaskDefinitionOut(S.Serializer):
    name = S.CharField()
    task_executor_name = S.CharField()
    parameters = S.DictField()
    depends_on = S.ListField(child=S.CharField())
    retries = RetriesOut()
    timeout_seconds = S.FloatField(required=False)
    description = S.CharField(required=False)


class FlowDefinitionOut(S.Serializer):
    tasks = TaskDefinitionOut(many=True)
    description = S.CharField(required=False)


def _id() -> Out:
    return Out("id", UUID_KIND, S.UUIDField)


def _organization() -> Out:
    return Out("organization_id", UUID_KIND, S.UUIDField)


def _time(key: str, *, null: bool = False) -> Out:
    return Out(key, TIME_KIND, lambda: S.DateTimeField(allow_null=null))


def _json(key: str, **options: object) -> Out:
    return Out(key, JSON_KIND, lambda: S.JSONField(allow_null=True, **options))


def _choice(key: str, choices: type) -> Out:
    return Out(key, VALUE_KIND, lambda: S.ChoiceField(choices=choices.choices))


FLOW = Renderer(
    "FlowOut",
    [
        _id(),
        _organization(),
        Out("display_name", VALUE_KIND, S.CharField),
        Out("description", VALUE_KIND, S.CharField),
        _choice("status", FlowStatus),
        Out("version", VALUE_KIND, lambda: S.IntegerField(min_value=1)),
        Out(
            "definition",
            JSON_KIND,
            lambda: FlowDefinitionOut(help_text="Canonical form: defaults spelled out."),
        ),
        _json("tags"),
        _time("created_at"),
        _time("updated_at"),
        Out("modified_by", VALUE_KIND, S.CharField),
        Out("deleted", VALUE_KIND, S.BooleanField),
    ],
)

FLOW_VERSION = Renderer(
    "FlowVersionOut",
    [
        _id(),
        _organization(),
        Out("flow_id", UUID_KIND, S.UUIDField),
        Out("version", VALUE_KIND, lambda: S.IntegerField(min_value=1)),
        Out("definition", JSON_KIND, FlowDefinitionOut),
        _time("created_at"),
        Out("created_by", VALUE_KIND, S.CharField),
    ],
)

FLOW_EXECUTION = Renderer(
    "FlowExecutionOut",
    [
        _id(),
        _organization(),
        Out("flow_id", UUID_KIND, S.UUIDField),
        Out("flow_version", VALUE_KIND, lambda: S.IntegerField(min_value=1)),
        _choice("status", FlowExecutionStatus),
        _json("input"),
        _time("created_at"),
        _time("updated_at"),
        Out("modified_by", VALUE_KIND, S.CharField),
        _time("started_at", null=True),
        _time("completed_at", null=True),
    ],
)

TASK_EXECUTION = Renderer(
    "TaskExecutionOut",
    [
        _id(),
        _organization(),
        Out("flow_execution_id", UUID_KIND, S.UUIDField),
        Out("task_name", VALUE_KIND, S.CharField),
        Out("task_execution_idx", VALUE_KIND, S.IntegerField),
        _choice("status", TaskExecutionStatus),
        _json("input"),
        _json("output"),
        _json("error"),
        _time("created_at"),
        _time("updated_at"),
        Out("modified_by", VALUE_KIND, S.CharField),
        _time("started_at", null=True),
        _time("completed_at", null=True),
        _choice("edited_status", EditedStatus),
        _choice("stale_status", StaleStatus),
        _json("stale_reason"),
        Out("task_executor_name", VALUE_KIND, lambda: S.CharField(allow_blank=True)),
        Out("attempt", VALUE_KIND, S.IntegerField),
        Out("max_attempts", VALUE_KIND, S.IntegerField),
    ],
)

TASK_STATUS = Renderer(
    "TaskStatusOut",
    [
        _id(),
        _organization(),
        Out("flow_execution_id", UUID_KIND, S.UUIDField),
        Out("task_name", VALUE_KIND, S.CharField),
        Out("status", VALUE_KIND, lambda: S.CharField(allow_null=True)),
        _time("created_at"),
    ],
)

flow_data = FLOW.data
flow_version_data = FLOW_VERSION.data
flow_execution_data = FLOW_EXECUTION.data
task_execution_data = TASK_EXECUTION.data
task_status_data = TASK_STATUS.data
