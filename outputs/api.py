"""HTTP API of task outputs, reading: the list (streamed) and one output. A worker's own
output (``POST /api/task-outputs``, seed 001) is a report the engine decides: its view adds
``post`` to this list view (``executions.api.task_outputs``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flowplatform.api import parse_query, principal_of
from outputs.enums import TaskOutputStatus
from outputs.representations import TASK_OUTPUT, task_output_data
from outputs.selectors import (
    TaskOutputFilters,
    get_task_output,
    list_task_outputs,
    row_dict,
    task_output_rows,
)
from outputs.streaming import json_array_response

LIST_MAX_LIMIT = 1000
STREAM_CHUNK_SIZE = 1000  # rows per cursor fetch and per streamed piece
LISTABLE_STATUSES = [s for s in TaskOutputStatus.values if s != TaskOutputStatus.DELETED]


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of coercing them."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string (DRF would also take an integer as ``UUID(int=...)``)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


# --- input ----------------------------------------------------------------------------------


class TaskOutputListQuery(serializers.Serializer):
    flow_execution_id = serializers.UUIDField(required=False, help_text="Only this execution.")
    task_name = StrictCharField(required=False, min_length=1, max_length=200, trim_whitespace=False)
    status = serializers.ChoiceField(choices=LISTABLE_STATUSES, required=False)
    created_after = serializers.DateTimeField(
        required=False, help_text="Only outputs created strictly after this instant."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only outputs created strictly before this instant."
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=LIST_MAX_LIMIT,
        help_text='At most this many outputs; a `Link: <…>; rel="next"` header points to '
        "the next page when more remain. Without it, every output is returned.",
    )
    starting_after = serializers.UUIDField(
        required=False,
        help_text="Cursor: the id of the last output of the previous page. An id that is "
        "not one of your outputs is a bad request (400).",
    )


# --- output (documentation of what representations.task_output_data renders) --------------


TaskOutputOut = TASK_OUTPUT.serializer()


_LINK_HEADER = OpenApiParameter(
    "Link",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    description='`<url>; rel="next"` when `limit` cut the list.',
)
_TASK_OUTPUT_ID = OpenApiParameter("task_output_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class TaskOutputListView(APIView):
    @extend_schema(
        operation_id="list_task_outputs",
        summary="List task outputs",
        description=(
            "Every task output of the caller's organization, newest first (`created_at` "
            "desc, then `id` desc), soft-deleted ones excluded. Without `limit` the whole "
            "list is streamed as one JSON array. Filters and the cursor are optional."
        ),
        parameters=[TaskOutputListQuery, _LINK_HEADER],
        responses={200: TaskOutputOut(many=True)},
    )
    def get(self, request: Request) -> HttpResponseBase:
        principal = principal_of(request)
        query = parse_query(TaskOutputListQuery, request)
        filters = TaskOutputFilters(
            **{k: v for k, v in query.items() if k != "limit"},
        )
        queryset = list_task_outputs(organization=principal.organization, filters=filters)
        rows = task_output_rows(queryset)
        limit = query.get("limit")
        if limit is None:
            return json_array_response(
                request._request,
                rows,
                row_dict,
                chunk_size=STREAM_CHUNK_SIZE,
                organization_id=principal.organization.id,
            )
        page = list(rows[: limit + 1])
        headers = {}
        if len(page) > limit:
            page = page[:limit]
            headers["Link"] = f'<{_next_url(request, page[-1][0])}>; rel="next"'
        return Response([row_dict(values) for values in page], headers=headers)


class TaskOutputDetailView(APIView):
    @extend_schema(
        operation_id="get_task_output",
        summary="Get a task output",
        parameters=[_TASK_OUTPUT_ID],
        responses={200: TaskOutputOut},
    )
    def get(self, request: Request, task_output_id: str) -> Response:
        principal = principal_of(request)
        row = get_task_output(organization=principal.organization, task_output_id=task_output_id)
        return Response(task_output_data(row))


def _next_url(request: Request, last_id: Any) -> str:
    params = {k: v for k, v in request.query_params.items() if k != "starting_after"}
    params["starting_after"] = str(last_id)
    return request.build_absolute_uri(f"{request.path}?{urlencode(params)}")
