"""Task executions: worker reports (seed 002), a person's edits (seed 003), reads, and the
internal task-status batch (seed 004).

``TaskExecutionsView.post`` is the one path of a worker's report: validated by the report's
field table (``REPORT``), decided by the engine (``engine.reports``), rendered by
``task_execution_data``. Under ASGI the report waits in the event loop for the batch that
decides it, and the batches run on threads kept for them (``REPORT_THREADS``); a report
decided by another's batch costs no thread at all. Under WSGI (the test client, sync
workers) a batch runs on the request's own thread, inside its transaction if it has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.api.task_execution_schemas import (
    REPORT,
    STATUS_BATCH,
    TaskExecutionEditInput,
    TaskExecutionEditOut,
    TaskExecutionEditQuery,
    TaskExecutionListQuery,
    TaskExecutionOut,
    TaskExecutionReportOut,
    TaskStatusOut,
)
from executions.engine import reports
from executions.representations import task_execution_data
from executions.services import task_execution_edits, task_execution_queries, task_statuses
from flowplatform import tenancy
from flowplatform.api import AsyncAPIView, on_thread, parse, parse_query, principal_of
from flowplatform.pagination import DEFAULT_LIMIT, LINK_HEADER, next_link
from flowplatform.permissions import IsServiceKey

TAGS = ["task executions"]

# The threads that decide batches of reports under ASGI. A thread holds a database
# connection only while it decides.
_batch_threads = ThreadPoolExecutor(
    max_workers=getattr(settings, "REPORT_THREADS", 8), thread_name_prefix="report-batches"
)


def _on_batch_thread(lead: Callable[[], None]) -> None:
    _batch_threads.submit(_tidily, lead)


def _tidily(run: Callable[[], None]) -> None:
    """``run()``, then the thread's database connection goes back (to the pool, or closed
    if broken or too old), as at the end of a request."""
    try:
        run()
    finally:
        close_old_connections()


def _batch_runner(request: Request) -> Callable[[Callable[[], None]], None]:
    """Where the batches a report leads run: on the batch threads under ASGI; under WSGI on
    the request's own thread (its transaction included), waiting for nothing else."""
    if isinstance(request._request, ASGIRequest):
        return _on_batch_thread
    loop = asyncio.get_running_loop()
    here = sync_to_async(lambda lead: lead(), thread_sensitive=True)

    def start(lead: Callable[[], None]) -> None:
        # Called from whichever thread ends the batch before: into this loop, safely.
        loop.call_soon_threadsafe(lambda: loop.create_task(here(lead)))

    return start


class TaskExecutionsView(AsyncAPIView):
    @extend_schema(
        operation_id="task_executions_list",
        summary="List task executions",
        description="Newest first. Filters combine with AND; paginated with `limit` and "
        "`starting_after`.",
        tags=TAGS,
        parameters=[TaskExecutionListQuery, LINK_HEADER],
        responses={200: TaskExecutionOut(many=True)},
    )
    async def get(self, request: Request) -> Response:
        query = parse_query(TaskExecutionListQuery, request)
        organization = principal_of(request).organization
        page = await on_thread(_list)(organization, query)
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
            "would change a finished execution, or the execution is leased and the report "
            "is not its lease holder's. With `claim` (service keys) it also claims the "
            "worker's next task executions, returned in `claimed`: a worker needs no claim "
            "request between tasks."
        ),
        tags=TAGS,
        request=REPORT.serializer(),
        responses={
            201: OpenApiResponse(TaskExecutionReportOut, description="Created."),
            200: OpenApiResponse(TaskExecutionReportOut, description="Updated, or a repeat."),
        },
        extensions={"x-error-codes": ["404", "409"]},
    )
    async def post(self, request: Request) -> Response:
        outcome = await reports.areport_task_execution(
            principal=principal_of(request),
            data=REPORT.validate(request.data),
            start=_batch_runner(request),
        )
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
    async def put(self, request: Request) -> Response:
        query = parse_query(TaskExecutionEditQuery, request)
        data = parse(TaskExecutionEditInput, request.data)
        result = await on_thread(_edit)(principal_of(request), data, query)
        body = task_execution_data(result.task_execution)
        if result.would_mark_stale is not None:
            body["would_mark_stale"] = result.would_mark_stale
        return Response(body)


def _list(organization: Any, query: dict[str, Any]) -> task_execution_queries.Page:
    with tenancy.activate(organization.pk, atomic=True):
        return task_execution_queries.list_task_executions(
            organization=organization,
            flow_execution_id=query.get("flow_execution_id"),
            task_name=query.get("task_name"),
            task_execution_idx=query.get("task_execution_idx"),
            status=query.get("status"),
            starting_after=query.get("starting_after"),
            limit=query.get("limit", DEFAULT_LIMIT),
        )


def _edit(
    principal: Any, data: dict[str, Any], query: dict[str, Any]
) -> task_execution_edits.EditResult:
    with tenancy.activate(principal.organization.pk, atomic=True):
        return task_execution_edits.edit_task_execution(
            principal=principal,
            data=data,
            execute_flow=query["execute_flow"],
            dry_run=query["dry_run"],
        )


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
        request=STATUS_BATCH.serializer(),
        responses={200: TaskStatusOut(many=True)},
    )
    def post(self, request: Request, flow_execution_id: UUID) -> Response:
        data = STATUS_BATCH.validate(request.data)
        rows = task_statuses.add_task_statuses(
            principal=principal_of(request),
            flow_execution_id=flow_execution_id,
            statuses=[(item["task_name"], item["status"]) for item in data["statuses"]],
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
