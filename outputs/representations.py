"""How task outputs look on the wire (API responses, events and the OpenAPI schema): one
field table (``flowplatform.representation``)."""

from __future__ import annotations

from rest_framework import serializers as S

from flowplatform.representation import JSON_KIND, TIME_KIND, UUID_KIND, VALUE_KIND, Out, Renderer
from outputs.enums import EditedStatus, StaleStatus, TaskOutputStatus

TASK_OUTPUT = Renderer(
    "TaskOutputOut",
    [
        Out("id", UUID_KIND, S.UUIDField),
        Out("organization_id", UUID_KIND, S.UUIDField),
        Out("flow_execution_id", UUID_KIND, S.UUIDField),
        Out("flow_version", VALUE_KIND, lambda: S.IntegerField(allow_null=True, min_value=1)),
        Out("task_name", VALUE_KIND, lambda: S.CharField(min_length=1, max_length=200)),
        Out("summary", JSON_KIND, lambda: S.JSONField(allow_null=True)),
        Out("output", JSON_KIND, lambda: S.JSONField(allow_null=True)),
        Out("tags", JSON_KIND, lambda: S.JSONField(allow_null=True)),
        Out("status", VALUE_KIND, lambda: S.ChoiceField(choices=TaskOutputStatus.choices)),
        Out("created_at", TIME_KIND, S.DateTimeField),
        Out("updated_at", TIME_KIND, S.DateTimeField),
        Out("modified_by", VALUE_KIND, lambda: S.CharField(max_length=200)),
        Out("edited_status", VALUE_KIND, lambda: S.ChoiceField(choices=EditedStatus.choices)),
        Out("stale_status", VALUE_KIND, lambda: S.ChoiceField(choices=StaleStatus.choices)),
    ],
)

task_output_data = TASK_OUTPUT.data
