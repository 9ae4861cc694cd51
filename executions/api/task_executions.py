"""Task executions: worker reports (seed 002), a person's edits (seed 003), reads, and the
internal task-status batch (seed 004)."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.urls import path
from django.utils.decorators import method_decorator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.api.task_execution_schemas import (
    TaskExecutionEditInput,
    TaskExecutionEditOut,
    TaskExecutionEditQuery,
    TaskExecutionListQuery,
    TaskExecutionOut,
    TaskExecutionReportInput,
    TaskExecutionReportOut,
    TaskStatusBatchInput,
    TaskStatusOut,
    report_body,
    status_items,
)
from executions.representations import task_execution_data
from executions.services import task_execution_edits, task_execution_queries, task_statuses
from executions.services import task_executions as reports
from flowplatform import tenancy
from flowplatform.api import parse, parse_query, principal_of
from flowplatform.pagination import DEFAULT_LIMIT, LINK_HEADER, next_link
from flowplatform.permissions import IsServiceKey

TAGS = ["task executions"]


# No request transaction: a report is decided in the transaction its flow execution's
# batch of reports shares (``services.task_executions``); the list and the edit open their
# own, scoped to the caller's organization (row-level security).
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class TaskExecutionsView(APIView):
    @extend_schema(
        operation_id="task_executions_list",
        summary="List task executions",
        description="Newest first. Filters combine with AND; paginated with `limit` and "
        "`starting_after`.",
        tags=TAGS,
        parameters=[TaskExecutionListQuery, LINK_HEADER],
        responses={200: TaskExecutionOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        query = parse_query(TaskExecutionListQuery, request)
        organization = principal_of(request).organization
        with tenancy.activate(organization.pk, atomic=True):
            page = task_execution_queries.list_task_executions(
                organization=organization,
                flow_execution_id=query.get("flow_execution_id"),
                task_name=query.get("task_name"),
                task_execution_idx=query.get("task_execution_idx"),
                status=query.get("status"),
                starting_after=query.get("starting_after"),
                limit=query.get("limit", DEFAULT_LIMIT),
            )
        response = Response(page.items)
        if page.more:
            response["Link"] = next_link(request, page.last_id)
        return response

    @extend_schema(
        operation_id="task_executions_create",
        summary="Create (idempotently) or update a task execution record",
        description=(
            "Upsert on `(flow_execution_id, task_name, task_execution_idx)`: 201 when it "
            "created the record, 200 when it updated it or repeated a finished report. A "
            "terminal status lets the engine schedule downstream work. 409 when the report "
            "would change a finished execution or the lease is another worker's. With "
            "`claim` (service keys) it also claims the worker's next task executions, "
            "returned in `claimed`: a worker needs no claim request between tasks."
        ),
        tags=TAGS,
        request=TaskExecutionReportInput,
        responses={
            201: OpenApiResponse(TaskExecutionReportOut, description="Created."),
            200: OpenApiResponse(TaskExecutionReportOut, description="Updated, or a repeat."),
        },
        extensions={"x-error-codes": ["404", "409"]},
    )
    def post(self, request: Request) -> Response:
        data = report_body(request.data) or parse(TaskExecutionReportInput, request.data)
        outcome = reports.report_and_claim(principal=principal_of(request), data=data)
        body = task_execution_data(outcome.task)
        if outcome.claimed is not None:
            body["claimed"] = outcome.claimed
        return Response(body, status=201 if outcome.created else 200)

    @extend_schema(
        operation_id="task_executions_update",
        summary="Edit a task execution; optionally re-execute what it makes stale",
        description=(
            "The body carries `id`; fields not sent are left alone. Marks the downstream "
            "closure stale. `execute_flow=true` queues it again; `dry_run=true` changes "
            "nothing and adds `would_mark_stale`. 409 when `updated_at` is not the stored one."
        ),
        tags=TAGS,
        parameters=[TaskExecutionEditQuery],
        request=TaskExecutionEditInput,
        responses={200: TaskExecutionEditOut},
        extensions={"x-error-codes": ["404", "409"]},
    )
    def put(self, request: Request) -> Response:
        query = parse_query(TaskExecutionEditQuery, request)
        data = parse(TaskExecutionEditInput, request.data)
        principal = principal_of(request)
        with tenancy.activate(principal.organization.pk, atomic=True):
            result = task_execution_edits.edit_task_execution(
                principal=principal,
                data=data,
                execute_flow=query["execute_flow"],
                dry_run=query["dry_run"],
            )
        body = task_execution_data(result.task_execution)
        if result.would_mark_stale is not None:
            body["would_mark_stale"] = result.would_mark_stale
        return Response(body)


class TaskExecutionDetailView(APIView):
    @extend_schema(
        operation_id="task_executions_retrieve",
        summary="Get a task execution",
        tags=TAGS,
        responses={200: TaskExecutionOut},
    )
    def get(self, request: Request, task_execution_id: UUID) -> Response:
        task = task_execution_queries.get_task_execution(
            organization=principal_of(request).organization, task_execution_id=task_execution_id
        )
        return Response(task_execution_data(task))


class TaskStatusBatchView(APIView):
    permission_classes = [IsServiceKey]

    @extend_schema(
        operation_id="flow_executions_task_status_create",
        summary="Add task status updates (internal, service keys only)",
        description=(
            "1..100 `{task_name, status}` items appended in order in one transaction; the "
            "statuses are not validated (any text up to 50 characters, or null). Updates the "
            "status of existing task outputs. Answers the created records."
        ),
        tags=TAGS,
        request=TaskStatusBatchInput,
        responses={200: TaskStatusOut(many=True)},
    )
    def post(self, request: Request, flow_execution_id: UUID) -> Response:
        statuses = status_items(request.data)
        if statuses is None:  # something is wrong: the serializer words the errors
            data = parse(TaskStatusBatchInput, request.data)
            statuses = [(item["task_name"], item["status"]) for item in data["statuses"]]
        rows = task_statuses.add_task_statuses(
            principal=principal_of(request),
            flow_execution_id=flow_execution_id,
            statuses=statuses,
        )
        return Response(rows)


urlpatterns = [
    path("task-executions", TaskExecutionsView.as_view(), name="task-executions"),
    path(
        "task-executions/<uuid:task_execution_id>",
        TaskExecutionDetailView.as_view(),
        name="task-execution-detail",
    ),
    path(
        "flow-executions/<uuid:flow_execution_id>/task-status",
        TaskStatusBatchView.as_view(),
        name="flow-execution-task-status",
    ),
]
