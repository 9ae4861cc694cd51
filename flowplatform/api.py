"""Small helpers shared by every API view: parsing input, error schema, the me endpoint."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection, transaction
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail as DRFErrorDetail
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flowplatform.authentication import authenticates_without_queries
from flowplatform.exceptions import NotFound, raise_validation
from flowplatform.principal import Principal

T = TypeVar("T")


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
    valid = serializer.is_valid()
    wrong_types = json_type_errors(serializer, data) if location == "body" else {}
    if not valid or wrong_types:
        errors = dict(serializer.errors) if not valid else {}
        raise_validation({**errors, **wrong_types}, location=location)
    return serializer.validated_data


def json_type_errors(serializer: serializers.Serializer, data: Any) -> dict[Any, Any]:
    """Values of a JSON body whose JSON type is not the one the schema documents.

    DRF coerces: ``"12"`` or ``12.0`` pass an ``IntegerField``, ``true`` a ``FloatField``,
    ``12`` a ``CharField`` (as ``"12"``), ``1`` or ``"yes"`` a ``BooleanField``, an integer
    a ``UUIDField``. The OpenAPI schema says ``integer``, ``number``, ``string``, ``boolean``,
    so such a body is refused (422, type ``type_error``), as the schema promises. Errors are
    shaped like DRF's (nested by field name and list index). Fields of other kinds (JSON
    values, the flow definition) are left to the serializer.
    """
    errors: dict[Any, Any] = {}
    if not isinstance(data, dict):
        return errors
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        error = _value_type_error(field, data[name])
        if error:
            errors[name] = error
    return errors


def _value_type_error(field: serializers.Field, value: Any) -> Any:
    if value is None:
        return None  # allow_null decides
    expected = _expected_json_type(field)
    if expected is None:
        return None
    if not _is_json_type(value, expected):
        return [DRFErrorDetail(f"Expected {_ARTICLES[expected]}.", code="type_error")]
    if isinstance(field, serializers.ListSerializer | serializers.ListField):
        child = field.child
        items = {i: _value_type_error(child, item) for i, item in enumerate(value)}
        return {i: e for i, e in items.items() if e} or None
    if isinstance(field, serializers.DictField):
        items = {k: _value_type_error(field.child, item) for k, item in value.items()}
        return {k: e for k, e in items.items() if e} or None
    if isinstance(field, serializers.Serializer):
        return json_type_errors(field, value) or None
    return None


_ARTICLES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}


def _expected_json_type(field: serializers.Field) -> str | None:
    if isinstance(field, serializers.JSONField):
        return None
    if isinstance(field, serializers.BooleanField):
        return "boolean"
    if isinstance(field, serializers.IntegerField):
        return "integer"
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return "number"
    if isinstance(field, serializers.ChoiceField):
        return "string" if all(isinstance(c, str) for c in field.choices) else None
    text = (
        serializers.CharField,
        serializers.UUIDField,
        serializers.DateTimeField,
        serializers.DateField,
        serializers.TimeField,
    )
    if isinstance(field, text):
        return "string"
    if isinstance(field, serializers.ListSerializer | serializers.ListField):
        return "array"
    if isinstance(field, serializers.DictField | serializers.Serializer):
        return "object"
    return None


def _is_json_type(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def parse_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """Query parameters, rejecting ones the endpoint does not know (a typo is an error)."""
    known = set(serializer_class().fields)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise_validation({name: ["Unknown query parameter."] for name in unknown}, location="query")
    data = {key: request.query_params.get(key) for key in request.query_params}
    return parse(serializer_class, data, location="query")


def on_thread(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``fn`` as a coroutine run on the request's thread (``sync_to_async``); outside a
    transaction, the thread's database connection goes back (to the pool) when it returns,
    rather than stay held while the request awaits something else."""

    def tidily(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            if not connection.in_atomic_block:
                close_old_connections()

    return sync_to_async(tidily)


class AsyncAPIView(APIView):
    """A DRF view whose handlers are coroutines (``async def get``...): DRF's dispatch
    (content negotiation, authentication, permissions, the exception handler, rendering)
    run in the event loop under ASGI, so a request whose key is known without a query
    (``authenticates_without_queries``) never waits for a thread; other credentials are
    looked up on one. Handlers run synchronous services with ``sync_to_async``. The view
    opens no request transaction (Django allows none around an async view): its services
    open their own."""

    @transaction.non_atomic_requests
    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            if authenticates_without_queries(drf_request):
                self.initial(drf_request, *args, **kwargs)
            else:
                await on_thread(self.initial)(drf_request, *args, **kwargs)
            method = drf_request.method.lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                self.http_method_not_allowed(drf_request, *args, **kwargs)
            response = handler(drf_request, *args, **kwargs)
            if inspect.isawaitable(response):  # ``options`` is DRF's, synchronous
                response = await response
        except Exception as exc:  # noqa: BLE001 - DRF's exception handler shapes it
            response = self.handle_exception(exc)
        response = self.finalize_response(drf_request, response, *args, **kwargs)
        # Rendered here: Django renders a response it gets unrendered on a thread.
        response.render()
        plain = HttpResponse(
            response.content, status=response.status_code, headers=response.headers
        )
        plain.data = response.data  # type: ignore[attr-defined] - as DRF's test client reads it
        self.response = plain
        return plain


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
