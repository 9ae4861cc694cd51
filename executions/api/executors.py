"""``GET /api/task-executors``: the built-in executors and their parameter JSON Schemas."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.api.task_execution_schemas import ExecutorOut
from executions.worker.specs import BUILTIN_EXECUTORS


def executor_catalogue() -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "parameters_schema": spec.parameters_schema,
            "claimable": spec.claimable,
            "summary_fields": list(spec.summary_fields),
        }
        for spec in BUILTIN_EXECUTORS.values()
    ]


class TaskExecutorListView(APIView):
    @extend_schema(
        operation_id="task_executors_list",
        summary="List the built-in task executors",
        description="Any other executor name of the form `[a-z][a-z0-9_.-]*` is served by an "
        "external worker.",
        tags=["task executors"],
        responses={200: ExecutorOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(executor_catalogue())


urlpatterns = [path("task-executors", TaskExecutorListView.as_view(), name="task-executors")]
