"""``/api/task-outputs``: the list (``outputs.api``), and a worker's own output (seed 001),
which the engine decides (``engine.outputs.report_task_output``)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from executions.engine import outputs
from flowplatform.api import parse, principal_of
from outputs.api import (
    StrictCharField,
    StrictUUIDField,
    TaskOutputDetailView,
    TaskOutputListView,
    TaskOutputOut,
)
from outputs.enums import TaskOutputStatus
from outputs.representations import task_output_data


class TaskOutputCreateIn(serializers.Serializer):
    flow_execution_id = StrictUUIDField()
    organization_id = StrictUUIDField(
        required=False,
        help_text="Must be the caller's organization (403 otherwise); omitted, it is inherited.",
    )
    task_name = StrictCharField(min_length=1, max_length=200, trim_whitespace=False)
    summary = serializers.JSONField(
        allow_null=True, help_text="Required (may be null): any JSON value for display."
    )
    output = serializers.JSONField(required=False, allow_null=True)
    tags = serializers.JSONField(required=False, allow_null=True)
    status = serializers.ChoiceField(
        choices=TaskOutputStatus.choices,
        required=False,
        help_text="Default `queued` when the output is created; unchanged on update if omitted.",
    )
    modified_by = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Service keys only: the actor to record (default `system`). "
        "Ignored for user keys, which record the user's id.",
    )
    id = StrictCharField(required=False, allow_blank=True, help_text="Ignored.")
    created_at = StrictCharField(required=False, allow_blank=True, help_text="Ignored.")
    updated_at = StrictCharField(required=False, allow_blank=True, help_text="Ignored.")


class TaskOutputsView(TaskOutputListView):
    @extend_schema(
        operation_id="create_task_output",
        summary="Create or update a task output",
        description=(
            "Creates the output of a task of a flow execution (201) or, when that task "
            "already has one, updates it with the fields sent (200): reporting twice never "
            "duplicates. `id`, `created_at` and `updated_at` in the body are ignored. "
            "Notifies the flow's and the organization's summary WebSocket clients after "
            "commit."
        ),
        request=TaskOutputCreateIn,
        responses={
            201: OpenApiResponse(TaskOutputOut, description="Created."),
            200: OpenApiResponse(TaskOutputOut, description="Updated the task's output."),
        },
        extensions={"x-error-codes": ["404"]},
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = parse(TaskOutputCreateIn, request.data)
        row, created = outputs.report_task_output(principal=principal, data=data)
        return Response(task_output_data(row), status=201 if created else 200)


urlpatterns = [
    path("task-outputs", TaskOutputsView.as_view(), name="task-outputs"),
    path(
        "task-outputs/<str:task_output_id>",
        TaskOutputDetailView.as_view(),
        name="task-output-detail",
    ),
]
