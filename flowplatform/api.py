"""Small helpers shared by every API view: parsing input, error schema, the me endpoint."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flowplatform.exceptions import NotFound, raise_validation
from flowplatform.principal import Principal


def parse(
    serializer_class: type[serializers.Serializer],
    data: Any,
    *,
    location: str = "body",
    **kwargs: Any,
) -> dict[str, Any]:
    """Validate ``data`` with an input serializer; 422 with ``{loc, msg, type}`` details."""
    if location == "body" and not isinstance(data, dict):
        raise_validation({"non_field_errors": ["Expected a JSON object."]}, location=location)
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise_validation(serializer.errors, location=location)
    return serializer.validated_data


def parse_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """Query parameters, rejecting ones the endpoint does not know (a typo is an error)."""
    known = set(serializer_class().fields)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise_validation({name: ["Unknown query parameter."] for name in unknown}, location="query")
    data = {key: request.query_params.get(key) for key in request.query_params}
    return parse(serializer_class, data, location="query")


def principal_of(request: Request) -> Principal:
    return request.auth  # type: ignore[return-value]


class ErrorDetail(serializers.Serializer):
    loc = serializers.ListField(child=serializers.JSONField())
    msg = serializers.CharField()
    type = serializers.CharField()


class ErrorBody(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()
    details = serializers.ListField(child=serializers.JSONField())


class ErrorEnvelope(serializers.Serializer):
    error = ErrorBody()
    request_id = serializers.CharField(allow_null=True)


class MeView(APIView):
    @extend_schema(
        operation_id="me",
        summary="Who am I",
        description="The organization and kind of the credential used.",
        responses=inline_serializer(
            "Me",
            {
                "organization_id": serializers.UUIDField(),
                "organization_name": serializers.CharField(),
                "kind": serializers.ChoiceField(choices=["user", "service"]),
                "actor": serializers.CharField(),
                "read_only": serializers.BooleanField(),
                "via_session": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        return Response(
            {
                "organization_id": str(principal.organization.id),
                "organization_name": principal.organization.name,
                "kind": principal.kind,
                "actor": principal.actor,
                "read_only": principal.read_only,
                "via_session": principal.via_session,
            }
        )


class ApiNotFoundView(APIView):
    """Unknown routes under /api/ answer 404 in the envelope, whatever the method."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    schema = None

    def dispatch(self, request, *args, **kwargs):  # noqa: ANN001, ANN201
        return super().dispatch(request, *args, **kwargs)

    def http_method_not_allowed(self, request, *args, **kwargs):  # noqa: ANN001, ANN201
        raise NotFound("No such API route.")

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound("No such API route.")

    post = put = patch = delete = head = options = get
