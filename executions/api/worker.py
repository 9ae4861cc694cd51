"""The worker protocol (service keys): claim with long-poll, heartbeat, release.

The claim endpoint long-polls without holding a database connection or blocking a thread
while it waits: it is an async view that runs short synchronous claim attempts (closing the
connection after each) and sleeps in between on an ``asyncio.Event`` that this process sets
when it commits queued work for the organization (``engine.wakeup``), or for at most
``POLL_SECONDS`` so work queued by other server processes is found too.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.api.task_execution_schemas import (
    ClaimInput,
    ClaimOut,
    HeartbeatOut,
    TaskExecutionOut,
    WorkerInput,
)
from executions.engine import leases
from executions.engine.wakeup import Waiter
from executions.representations import task_execution_data
from flowplatform import shutdown, tenancy
from flowplatform.api import parse, principal_of
from flowplatform.models import Organization
from flowplatform.permissions import IsServiceKey
from flowplatform.renderers import dumps

TAGS = ["worker protocol"]
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class PendingClaim:
    """A claim that found nothing and may wait: what the later attempts need."""

    organization: Organization
    worker_id: str
    executors: list[str]
    limit: int
    deadline: float


class TaskExecutionClaimView(APIView):
    permission_classes = [IsServiceKey]

    @extend_schema(
        operation_id="task_executions_claim",
        summary="Claim queued task executions (long-poll)",
        description=(
            "Atomically claims up to `limit` queued, due task executions of the caller's "
            "organization whose executor is in `executors`: each becomes `running` under a "
            "lease for `worker_id` (`lease_seconds`; extend it with heartbeats). When none is "
            "available, waits up to `wait_seconds` for one. `human_review` tasks are never "
            "claimed."
        ),
        tags=TAGS,
        request=ClaimInput,
        responses={200: ClaimOut},
    )
    def post(self, request: Request) -> Response:
        data = parse(ClaimInput, request.data)
        organization = principal_of(request).organization
        claimed = leases.claim_task_executions(
            organization=organization,
            worker_id=data["worker_id"],
            executors=data["executors"],
            limit=data["limit"],
        )
        if not claimed and data["wait_seconds"] > 0:
            request._request.pending_claim = PendingClaim(  # type: ignore[attr-defined]
                organization=organization,
                worker_id=data["worker_id"],
                executors=data["executors"],
                limit=data["limit"],
                deadline=time.monotonic() + data["wait_seconds"],
            )
        return Response({"task_executions": claimed})


_claim_once_view = TaskExecutionClaimView.as_view()


def _release_connection() -> None:
    """Close this thread's connection between attempts (never inside a transaction, e.g. a
    test's, nor an in-memory SQLite database that closing would destroy)."""
    if connection.in_atomic_block:
        return
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        return
    connection.close()


def _first_attempt(request: HttpRequest) -> Any:
    try:
        # Under row-level security, authentication and the first claim share one short
        # transaction, like any request's; without it (SQLite) idle polls take no lock.
        with transaction.atomic() if tenancy.enabled() else nullcontext():
            return _claim_once_view(request)
    finally:
        _release_connection()


def _next_attempt(pending: PendingClaim) -> list[dict[str, Any]]:
    try:
        with tenancy.activate(pending.organization.id):
            return leases.claim_task_executions(
                organization=pending.organization,
                worker_id=pending.worker_id,
                executors=pending.executors,
                limit=pending.limit,
            )
    finally:
        _release_connection()


# No request transaction (an async view cannot have one, and a long-poll must not hold
# one): each attempt runs in its own, scoped to the organization (row-level security).
@transaction.non_atomic_requests
async def claim_view(request: HttpRequest) -> Any:
    response = await sync_to_async(_first_attempt)(request)
    pending: PendingClaim | None = getattr(request, "pending_claim", None)
    if pending is None:
        return response
    with Waiter(pending.organization.id, pending.executors) as waiter:
        # A server shutting down answers at once, so it can finish its in-flight requests.
        while (remaining := pending.deadline - time.monotonic()) > 0 and not shutdown.begun():
            await waiter.wait(min(remaining, POLL_SECONDS))
            claimed = await sync_to_async(_next_attempt)(pending)
            if claimed:
                body = dumps({"task_executions": claimed})
                return HttpResponse(body, status=200, content_type="application/json")
    return response


# drf-spectacular documents the DRF view behind the async wrapper.
claim_view.cls = TaskExecutionClaimView  # type: ignore[attr-defined]
claim_view.initkwargs = {}  # type: ignore[attr-defined]
claim_view.csrf_exempt = True  # type: ignore[attr-defined]


class TaskExecutionHeartbeatView(APIView):
    permission_classes = [IsServiceKey]

    @extend_schema(
        operation_id="task_executions_heartbeat",
        summary="Extend a claimed task execution's lease",
        description="409 when `worker_id` no longer holds the lease (finished, expired and "
        "retried, released). `cancel_requested` tells the worker to stop.",
        tags=TAGS,
        request=WorkerInput,
        responses={200: HeartbeatOut},
        extensions={"x-error-codes": ["409"]},
    )
    def post(self, request: Request, task_execution_id: UUID) -> Response:
        data = parse(WorkerInput, request.data)
        answer = leases.heartbeat_task_execution(
            organization=principal_of(request).organization,
            task_execution_id=task_execution_id,
            worker_id=data["worker_id"],
        )
        return Response(answer)


class TaskExecutionReleaseView(APIView):
    permission_classes = [IsServiceKey]

    @extend_schema(
        operation_id="task_executions_release",
        summary="Give a claimed task execution back to the queue",
        description="Back to `queued` without using up an attempt (cancelled instead when its "
        "flow execution is no longer running). 409 unless `worker_id` holds the lease.",
        tags=TAGS,
        request=WorkerInput,
        responses={200: TaskExecutionOut},
        extensions={"x-error-codes": ["409"]},
    )
    def post(self, request: Request, task_execution_id: UUID) -> Response:
        data = parse(WorkerInput, request.data)
        task = leases.release_task_execution(
            organization=principal_of(request).organization,
            task_execution_id=task_execution_id,
            worker_id=data["worker_id"],
        )
        return Response(task_execution_data(task))


urlpatterns = [
    path("task-executions/claim", claim_view, name="task-executions-claim"),
    path(
        "task-executions/<uuid:task_execution_id>/heartbeat",
        TaskExecutionHeartbeatView.as_view(),
        name="task-execution-heartbeat",
    ),
    path(
        "task-executions/<uuid:task_execution_id>/release",
        TaskExecutionReleaseView.as_view(),
        name="task-execution-release",
    ),
]
