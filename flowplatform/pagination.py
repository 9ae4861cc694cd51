"""Cursor pagination for list endpoints: ``limit`` and ``starting_after=<id>``.

The response body stays a JSON array; when the limit cut the list, a ``Link: <…>; rel="next"``
header points at the next page. The cursor is an item's id: the next page holds the items that
come after it in the list's order (keyset pagination, so pages stay disjoint and complete while
new items arrive at the top).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from flowplatform.exceptions import BadRequest

M = TypeVar("M", bound=Model)

DEFAULT_LIMIT = 100


class PageQuery(serializers.Serializer):
    """Query parameters every paginated list accepts; list queries subclass it."""

    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=getattr(settings, "FLOWPLATFORM_LIST_MAX_LIMIT", 1000),
        help_text=f"Page size (default {DEFAULT_LIMIT}).",
    )
    starting_after = serializers.UUIDField(
        required=False,
        help_text="Cursor: the id of the last item of the previous page (see the Link header).",
    )


LINK_HEADER = OpenApiParameter(
    "Link",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=[200],
    description='`<url>; rel="next"` when the limit cut the list: the URL of the next page.',
)


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: Any | None


def paginate(
    queryset: QuerySet[M],
    *,
    cursor_scope: QuerySet[M],
    limit: int | None,
    starting_after: Any | None,
) -> Page[M]:
    """One page of an ordered ``queryset``.

    ``queryset`` must be ordered by fields whose last one is unique (e.g. ``-created_at, -id``).
    The cursor item is looked up in ``cursor_scope`` (the caller's rows, including ones hidden
    from the list, so a cursor stays valid when its item is deleted meanwhile); an unknown
    cursor is a 400 on ``starting_after`` (``unknown_cursor``). ``limit=None`` returns
    everything.
    """
    ordering = [str(field) for field in queryset.query.order_by]
    if not ordering:
        raise ValueError("paginate() needs an ordered queryset")
    if starting_after is not None:
        cursor = cursor_scope.filter(pk=starting_after).first()
        if cursor is None:
            unknown_cursor("No item with this id in this list.")
        queryset = queryset.filter(_after(ordering, cursor))
    if limit is None:
        return Page(list(queryset), None)
    rows = list(queryset[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, rows[-1].pk)
    return Page(rows, None)


def unknown_cursor(message: str) -> None:
    """An unknown or foreign ``starting_after`` id: well-formed (so not a 422), but it names
    nothing in this list, like an unknown task name in a body (400, DESIGN §4). Answered the
    same for another organization's ids."""
    raise BadRequest(
        f"starting_after: {message}",
        details=[{"loc": ["query", "starting_after"], "msg": message, "type": "unknown_cursor"}],
    )


def _after(ordering: Iterable[str], cursor: Model) -> Q:
    """Rows strictly after ``cursor`` in ``ordering`` (a lexicographic keyset condition)."""
    clauses: list[Q] = []
    equal: dict[str, Any] = {}
    for field in ordering:
        name = field.lstrip("-")
        value = getattr(cursor, name)
        lookup = "lt" if field.startswith("-") else "gt"
        clauses.append(Q(**equal, **{f"{name}__{lookup}": value}))
        equal[name] = value
    return reduce(or_, clauses)


def next_link(request: Request, cursor: Any) -> str:
    params = request.query_params.copy()
    params["starting_after"] = str(cursor)
    url = request.build_absolute_uri(request.path)
    return f'<{url}?{params.urlencode()}>; rel="next"'


def page_response(
    request: Request, page: Page[M], render: Callable[[M], dict[str, Any]]
) -> Response:
    """The page as a JSON array, with a ``Link`` header when there is a next page."""
    response = Response([render(item) for item in page.items])
    if page.next_cursor is not None:
        response["Link"] = next_link(request, page.next_cursor)
    return response
