"""Flow management (user keys and sessions only): CRUD, definitions, versions, validation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.validators import RegexValidator
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import dsl
from executions.api.bodies import (
    DefinitionField,
    ServerFieldsRejected,
    organization_id_field,
)
from executions.api.parsers import YAML_DEFINITION_PARSERS, YAML_MEDIA_TYPES, YAML_PARSERS
from executions.enums import FlowStatus
from executions.representations import (
    FLOW,
    FLOW_VERSION,
    TaskDefinitionOut,
    flow_data,
    flow_version_data,
)
from executions.selectors import (
    flows_of,
    get_flow,
    get_flow_version,
    list_flow_versions,
    list_flows,
)
from executions.services import flows as services
from flowplatform.api import parse, parse_query, principal_of
from flowplatform.openapi import NOT_BLANK_PATTERN
from flowplatform.pagination import DEFAULT_LIMIT, LINK_HEADER, PageQuery, page_response, paginate
from flowplatform.parsers import JSONParser
from flowplatform.permissions import IsUserPrincipal

TAGS = ["flows"]
# Names need a visible character; as a validator it also appears in the schema (`pattern`).
# (Python's whitespace spelled out: ECMA's ``\S`` disagrees with ``str.strip()`` on a few.)
NOT_BLANK = RegexValidator(NOT_BLANK_PATTERN, "This field may not be blank.", code="blank")
FLOW_SERVER_FIELDS = ("id", "version", "created_at", "updated_at", "modified_by", "deleted")

# -- input ------------------------------------------------------------------------------------


class FlowCreateInput(ServerFieldsRejected):
    """A new flow. Server-set fields (`id`, `version`, `created_at`, ...) are rejected (422)."""

    server_fields = FLOW_SERVER_FIELDS

    display_name = serializers.CharField(max_length=200, validators=[NOT_BLANK])
    description = serializers.CharField(required=False, allow_blank=True, default="")
    status = serializers.ChoiceField(FlowStatus.choices, required=False, default=FlowStatus.DRAFT)
    tags = serializers.JSONField(required=False, allow_null=True, default=None)
    definition = DefinitionField()
    organization_id = organization_id_field()


class FlowUpdateInput(ServerFieldsRejected):
    """The fields to change. Server-set fields (`id`, `version`, ...) are rejected (422)."""

    server_fields = FLOW_SERVER_FIELDS

    display_name = serializers.CharField(max_length=200, required=False, validators=[NOT_BLANK])
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(FlowStatus.choices, required=False)
    tags = serializers.JSONField(required=False, allow_null=True)
    definition = DefinitionField(
        required=False, help_text="A changed definition becomes version N+1."
    )
    organization_id = organization_id_field()


class DefinitionInput(ServerFieldsRejected):
    """A flow definition to store or check."""

    server_fields = FLOW_SERVER_FIELDS

    definition = DefinitionField()


class OptionalDefinitionInput(ServerFieldsRejected):
    """A flow definition to check; omitted, the stored one is checked."""

    server_fields = FLOW_SERVER_FIELDS

    definition = DefinitionField(
        required=False, help_text="Omitted: the flow's stored definition is checked."
    )


class FlowListQuery(PageQuery):
    status = serializers.ChoiceField(FlowStatus.choices, required=False)
    tag = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Flows whose tags are an array holding this string, or an object with this key.",
    )
    created_after = serializers.DateTimeField(required=False, help_text="Created strictly after.")
    created_before = serializers.DateTimeField(required=False, help_text="Created strictly before.")


class VersionListQuery(PageQuery):
    pass


# -- output (documentation of what executions.representations renders) ---------------------


FlowOut = FLOW.serializer()
FlowVersionOut = FLOW_VERSION.serializer()


class ValidatedTaskOut(TaskDefinitionOut):
    dependencies = serializers.ListField(
        child=serializers.CharField(),
        help_text="depends_on plus the tasks its placeholders reference.",
    )


class FlowValidationOut(serializers.Serializer):
    valid = serializers.BooleanField()
    tasks = ValidatedTaskOut(many=True)
    order = serializers.ListField(
        child=serializers.CharField(), help_text="A topological order of the task names."
    )


def validation_data(flow: dsl.FlowDefinition) -> dict[str, Any]:
    return {
        "valid": True,
        "tasks": [
            {**task.to_dict(), "dependencies": list(task.dependencies)} for task in flow.tasks
        ],
        "order": list(flow.order),
    }


INVALID_DEFINITION = OpenApiResponse(
    description="Invalid definition: one `details` entry `{loc, msg, type}` per problem."
)
YAML_DEFINITION_REQUEST = {
    "application/json": DefinitionInput,
    **{media_type: OpenApiTypes.STR for media_type in YAML_MEDIA_TYPES},
}

# -- views ------------------------------------------------------------------------------------


class FlowUserView(APIView):
    permission_classes = [IsUserPrincipal]


class FlowListView(FlowUserView):
    parser_classes = [JSONParser, *YAML_PARSERS]

    @extend_schema(
        operation_id="flows_list",
        summary="List flows",
        description="Live flows of the organization, newest first (deleted flows are hidden).",
        tags=TAGS,
        parameters=[FlowListQuery, LINK_HEADER],
        responses={200: FlowOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        query = parse_query(FlowListQuery, request)
        organization = principal_of(request).organization
        flows = list_flows(
            organization=organization,
            status=query.get("status"),
            tag=query.get("tag"),
            created_after=query.get("created_after"),
            created_before=query.get("created_before"),
        )
        page = paginate(
            flows,
            cursor_scope=flows_of(organization=organization, include_deleted=True),
            limit=query.get("limit", DEFAULT_LIMIT),
            starting_after=query.get("starting_after"),
        )
        return page_response(request, page, flow_data)

    @extend_schema(
        operation_id="flows_create",
        summary="Create a flow",
        description=(
            "Creates the flow and its version 1. The body is JSON or YAML (`application/yaml`,"
            " `text/yaml`); `definition` is an object or YAML/JSON text."
        ),
        tags=TAGS,
        request=FlowCreateInput,
        responses={201: FlowOut, 400: INVALID_DEFINITION},
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = parse(FlowCreateInput, request.data)
        principal.check_body_organization(data)
        flow = services.create_flow(
            organization=principal.organization,
            actor=principal.actor,
            display_name=data["display_name"],
            description=data["description"],
            status=data["status"],
            tags=data["tags"],
            definition=data["definition"],
        )
        return Response(flow_data(flow), status=201)


class FlowDetailView(FlowUserView):
    parser_classes = [JSONParser, *YAML_PARSERS]

    @extend_schema(
        operation_id="flows_retrieve", summary="Get a flow", tags=TAGS, responses=FlowOut
    )
    def get(self, request: Request, flow_id: UUID) -> Response:
        organization = principal_of(request).organization
        return Response(flow_data(get_flow(organization=organization, flow_id=flow_id)))

    @extend_schema(
        operation_id="flows_partial_update",
        summary="Update a flow",
        description="Changes the given fields; a changed `definition` creates version N+1.",
        tags=TAGS,
        request=FlowUpdateInput,
        responses={200: FlowOut, 400: INVALID_DEFINITION},
    )
    def patch(self, request: Request, flow_id: UUID) -> Response:
        principal = principal_of(request)
        data = parse(FlowUpdateInput, request.data)
        principal.check_body_organization(data)
        data.pop("organization_id", None)
        flow = services.update_flow(
            organization=principal.organization, flow_id=flow_id, actor=principal.actor, **data
        )
        return Response(flow_data(flow))

    @extend_schema(
        operation_id="flows_destroy",
        summary="Delete a flow",
        description=(
            "Soft delete: the flow is hidden from lists and answers 404 afterwards; deleting it"
            " again answers 204. Its versions and executions are kept."
        ),
        tags=TAGS,
        responses={204: None},
    )
    def delete(self, request: Request, flow_id: UUID) -> Response:
        principal = principal_of(request)
        services.delete_flow(
            organization=principal.organization, flow_id=flow_id, actor=principal.actor
        )
        return Response(status=204)


class FlowDefinitionView(FlowUserView):
    parser_classes = [JSONParser, *YAML_DEFINITION_PARSERS]

    @extend_schema(
        operation_id="flows_definition_update",
        summary="Replace a flow's definition",
        description=(
            "Validates and stores the definition as version N+1 (an identical definition"
            " changes nothing). JSON body `{definition}`, or the YAML document itself."
        ),
        tags=TAGS,
        request=YAML_DEFINITION_REQUEST,
        responses={200: FlowOut, 400: INVALID_DEFINITION},
    )
    def put(self, request: Request, flow_id: UUID) -> Response:
        principal = principal_of(request)
        data = parse(DefinitionInput, request.data)
        flow = services.set_flow_definition(
            organization=principal.organization,
            flow_id=flow_id,
            actor=principal.actor,
            definition=data["definition"],
        )
        return Response(flow_data(flow))


class FlowValidateView(FlowUserView):
    parser_classes = [JSONParser, *YAML_DEFINITION_PARSERS]

    @extend_schema(
        operation_id="flows_validate",
        summary="Validate a definition for a flow",
        description=(
            "Checks a definition without saving it; without one, checks the stored definition."
            " JSON body `{definition?}`, or the YAML document itself."
        ),
        tags=TAGS,
        request={
            "application/json": OptionalDefinitionInput,
            **{media_type: OpenApiTypes.STR for media_type in YAML_MEDIA_TYPES},
        },
        responses={200: FlowValidationOut, 400: INVALID_DEFINITION},
    )
    def post(self, request: Request, flow_id: UUID) -> Response:
        data = parse(OptionalDefinitionInput, request.data)
        flow = services.validate_definition_of_flow(
            organization=principal_of(request).organization,
            flow_id=flow_id,
            **({"definition": data["definition"]} if "definition" in data else {}),
        )
        return Response(validation_data(flow))


class DefinitionValidateView(FlowUserView):
    parser_classes = [JSONParser, *YAML_DEFINITION_PARSERS]

    @extend_schema(
        operation_id="flow_definitions_validate",
        summary="Validate a definition",
        description="Checks a definition without saving anything.",
        tags=TAGS,
        request=YAML_DEFINITION_REQUEST,
        responses={200: FlowValidationOut, 400: INVALID_DEFINITION},
    )
    def post(self, request: Request) -> Response:
        data = parse(DefinitionInput, request.data)
        return Response(
            validation_data(services.validate_flow_definition(definition=data["definition"]))
        )


class FlowVersionListView(FlowUserView):
    @extend_schema(
        operation_id="flows_versions_list",
        summary="List a flow's versions",
        description="Newest version first.",
        tags=TAGS,
        parameters=[VersionListQuery, LINK_HEADER],
        responses={200: FlowVersionOut(many=True)},
    )
    def get(self, request: Request, flow_id: UUID) -> Response:
        query = parse_query(VersionListQuery, request)
        flow = get_flow(organization=principal_of(request).organization, flow_id=flow_id)
        versions = list_flow_versions(flow=flow)
        page = paginate(
            versions,
            cursor_scope=versions,
            limit=query.get("limit", DEFAULT_LIMIT),
            starting_after=query.get("starting_after"),
        )
        return page_response(request, page, flow_version_data)


class FlowVersionDetailView(FlowUserView):
    @extend_schema(
        operation_id="flows_versions_retrieve",
        summary="Get one version of a flow",
        tags=TAGS,
        responses=FlowVersionOut,
    )
    def get(self, request: Request, flow_id: UUID, version: int) -> Response:
        flow = get_flow(organization=principal_of(request).organization, flow_id=flow_id)
        return Response(flow_version_data(get_flow_version(flow=flow, version=version)))


urlpatterns = [
    path("flows", FlowListView.as_view(), name="flows"),
    path("flows/validate", DefinitionValidateView.as_view(), name="flow-definition-validate"),
    path("flows/<uuid:flow_id>", FlowDetailView.as_view(), name="flow-detail"),
    path("flows/<uuid:flow_id>/definition", FlowDefinitionView.as_view(), name="flow-definition"),
    path("flows/<uuid:flow_id>/validate", FlowValidateView.as_view(), name="flow-validate"),
    path("flows/<uuid:flow_id>/versions", FlowVersionListView.as_view(), name="flow-versions"),
    path(
        "flows/<uuid:flow_id>/versions/<int:version>",
        FlowVersionDetailView.as_view(),
        name="flow-version-detail",
    ),
]
