"""Flow executions: start, list, read (with task outputs), re-execute, cancel, delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.api.bodies import ServerFieldsRejected, organization_id_field
from executions.enums import FlowExecutionStatus
from executions.representations import FLOW_EXECUTION, flow_execution_data
from executions.selectors import (
    FLOW_EXECUTION_ORDERINGS,
    flow_executions_of,
    get_flow_execution,
    list_flow_executions,
    list_task_outputs_of_execution,
)
from executions.services import flow_executions as services
from flowplatform.api import parse, parse_query, principal_of
from flowplatform.pagination import DEFAULT_LIMIT, LINK_HEADER, PageQuery, page_response, paginate
from flowplatform.permissions import IsOrganizationPrincipal, IsUserPrincipal
from outputs.representations import TASK_OUTPUT, task_output_data

TAGS = ["flow-executions"]
LISTED_STATUSES = [s for s in FlowExecutionStatus.values if s != FlowExecutionStatus.DELETED]

# -- input ------------------------------------------------------------------------------------


class FlowExecutionCreateInput(ServerFieldsRejected):
    """A flow execution to start. Server-set fields (`status`, `id`, ...) are rejected (422)."""

    server_fields = (
        "id",
        "status",
        "flow_version",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
    )

    flow_id = serializers.UUIDField()
    input = serializers.JSONField(
        required=False, allow_null=True, default=None, help_text="Any JSON value."
    )
    modified_by = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Service keys may name the actor (default `system`); ignored for user keys.",
    )
    organization_id = organization_id_field()


class FlowExecutionListQuery(PageQuery):
    flow_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(LISTED_STATUSES, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Strictly after.")
    created_before = serializers.DateTimeField(required=False, help_text="Strictly before.")
    updated_after = serializers.DateTimeField(required=False, help_text="Strictly after.")
    updated_before = serializers.DateTimeField(required=False, help_text="Strictly before.")
    ordering = serializers.ChoiceField(
        FLOW_EXECUTION_ORDERINGS, required=False, default="-created_at"
    )


class ExecuteQuery(serializers.Serializer):
    only_stale = serializers.BooleanField(
        required=False, default=False, help_text="Re-run only the stale tasks."
    )
    only_failed = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Resume from failure: the failed tasks and what they block.",
    )
    # Both true is well-formed but contradictory: the engine answers 400 (not a 422, which
    # would claim the request broke the documented schema).


# -- output (documentation of what the representations render) ------------------------------


FlowExecutionOut = FLOW_EXECUTION.serializer()


FlowExecutionDetailOut = FLOW_EXECUTION.serializer(
    "FlowExecutionDetailOut",
    task_outputs=TASK_OUTPUT.serializer()(
        many=True, help_text="The current output of each task, oldest first."
    ),
)


def flow_execution_detail_data(execution: Any) -> dict[str, Any]:
    outputs = list_task_outputs_of_execution(flow_execution=execution)
    return {
        **flow_execution_data(execution),
        "task_outputs": [task_output_data(row) for row in outputs],
    }


# -- views ------------------------------------------------------------------------------------


def _permissions_by_method(view: APIView) -> list[BasePermission]:
    """Reads and starts for every key; deleting, cancelling and re-running are a person's."""
    user_only = view.request.method in getattr(view, "user_only_methods", ())
    return [IsUserPrincipal() if user_only else IsOrganizationPrincipal()]


class FlowExecutionListView(APIView):
    @extend_schema(
        operation_id="flow_executions_list",
        summary="List flow executions",
        description="Deleted executions are hidden. Default order: newest first.",
        tags=TAGS,
        parameters=[FlowExecutionListQuery, LINK_HEADER],
        responses={200: FlowExecutionOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        query = parse_query(FlowExecutionListQuery, request)
        organization = principal_of(request).organization
        status = query.get("status")
        executions = list_flow_executions(
            organization=organization,
            flow_id=query.get("flow_id"),
            statuses=[status] if status else None,
            created_after=query.get("created_after"),
            created_before=query.get("created_before"),
            updated_after=query.get("updated_after"),
            updated_before=query.get("updated_before"),
            ordering=query["ordering"],
        )
        page = paginate(
            executions,
            cursor_scope=flow_executions_of(organization=organization, include_deleted=True),
            limit=query.get("limit", DEFAULT_LIMIT),
            starting_after=query.get("starting_after"),
        )
        return page_response(request, page, flow_execution_data)

    @extend_schema(
        operation_id="flow_executions_create",
        summary="Start a flow execution",
        description=(
            "Creates a `queued` execution pinned to the flow's current version and starts it."
            " 404 for an unknown or deleted flow; draft flows may run."
        ),
        tags=TAGS,
        request=FlowExecutionCreateInput,
        responses={201: FlowExecutionOut},
        extensions={"x-error-codes": ["404"]},  # unknown or deleted flow_id
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = parse(FlowExecutionCreateInput, request.data)
        principal.check_body_organization(data)
        actor = principal.actor
        if principal.is_service and data.get("modified_by"):
            actor = data["modified_by"]
        execution = services.create_flow_execution(
            organization=principal.organization,
            actor=actor,
            flow_id=data["flow_id"],
            input=data["input"],
        )
        return Response(flow_execution_data(execution), status=201)


class FlowExecutionDetailView(APIView):
    user_only_methods = ("DELETE",)
    get_permissions = _permissions_by_method

    @extend_schema(
        operation_id="flow_executions_retrieve",
        summary="Get a flow execution with its task outputs",
        tags=TAGS,
        responses=FlowExecutionDetailOut,
    )
    def get(self, request: Request, flow_execution_id: UUID) -> Response:
        execution = get_flow_execution(
            organization=principal_of(request).organization, flow_execution_id=flow_execution_id
        )
        return Response(flow_execution_detail_data(execution))

    @extend_schema(
        operation_id="flow_executions_destroy",
        summary="Delete a flow execution",
        description="Soft delete (status `deleted`): 404 afterwards; deleting again answers 204.",
        tags=TAGS,
        responses={204: None},
    )
    def delete(self, request: Request, flow_execution_id: UUID) -> Response:
        principal = principal_of(request)
        services.delete_flow_execution(
            organization=principal.organization,
            flow_execution_id=flow_execution_id,
            actor=principal.actor,
        )
        return Response(status=204)


class FlowExecutionExecuteView(APIView):
    permission_classes = [IsUserPrincipal]

    @extend_schema(
        operation_id="flow_executions_execute",
        summary="Re-execute a flow execution",
        description=(
            "Re-runs every task, only the stale ones (`only_stale=true`), or resumes from"
            " failure (`only_failed=true`: failed tasks and what they block). New task"
            " executions get the next index. 409 while the flow execution is queued or running."
        ),
        tags=TAGS,
        request=None,
        parameters=[ExecuteQuery],
        responses={200: FlowExecutionOut},
        extensions={"x-error-codes": ["409"]},
    )
    def post(self, request: Request, flow_execution_id: UUID) -> Response:
        query = parse_query(ExecuteQuery, request)
        principal = principal_of(request)
        execution = services.reexecute_flow_execution(
            organization=principal.organization,
            flow_execution_id=flow_execution_id,
            actor=principal.actor,
            only_stale=query["only_stale"],
            only_failed=query["only_failed"],
        )
        return Response(flow_execution_data(execution))


class FlowExecutionCancelView(APIView):
    permission_classes = [IsUserPrincipal]

    @extend_schema(
        operation_id="flow_executions_cancel",
        summary="Cancel a flow execution",
        description=(
            "Queued tasks are cancelled and running ones asked to stop: the flow execution is"
            " `cancelled`, or `cancel_requested` until its running tasks end. Repeating it is"
            " harmless; a finished flow execution cannot be cancelled (409)."
        ),
        tags=TAGS,
        request=None,
        responses={200: FlowExecutionOut},
        extensions={"x-error-codes": ["409"]},
    )
    def post(self, request: Request, flow_execution_id: UUID) -> Response:
        principal = principal_of(request)
        execution = services.cancel_flow_execution(
            organization=principal.organization,
            flow_execution_id=flow_execution_id,
            actor=principal.actor,
        )
        return Response(flow_execution_data(execution))


urlpatterns = [
    path("flow-executions", FlowExecutionListView.as_view(), name="flow-executions"),
    path(
        "flow-executions/<uuid:flow_execution_id>",
        FlowExecutionDetailView.as_view(),
        name="flow-execution-detail",
    ),
    path(
        "flow-executions/<uuid:flow_execution_id>/execute",
        FlowExecutionExecuteView.as_view(),
        name="flow-execution-execute",
    ),
    path(
        "flow-executions/<uuid:flow_execution_id>/cancel",
        FlowExecutionCancelView.as_view(),
        name="flow-execution-cancel",
    ),
]
