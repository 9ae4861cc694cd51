"""Building blocks shared by every app's admin: JSON and status rendering, links between
related objects, bounded list pages, UUID-aware search and running service calls as staff.

The admin is a staff console over every organization. It never writes state itself: status
fields are read-only and every change goes through a service or the engine, whose
``FlowplatformError`` becomes an admin error message instead of a 500.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, IntegerField, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from flowplatform.exceptions import FlowplatformError

T = TypeVar("T")

# Above this size a JSON value is cut in the admin, so a huge task output cannot make a page
# megabytes long; the API still serves it whole.
JSON_DISPLAY_LIMIT = 20_000
# Paginators stop counting here: counting millions of rows costs more than the page itself.
COUNT_LIMIT = 50_000
# Bulk actions refuse larger selections: each row is one engine transaction.
ACTION_ROW_LIMIT = 200

STATUS_ICONS = {
    "queued": "○",
    "running": "▶",
    "in_progress": "▶",
    "completed": "✓",
    "failed": "✗",
    "cancel_requested": "■",
    "cancelled": "■",
    "stale": "↻",
    "deleted": "−",
    "awaiting_input": "⏸",
    "draft": "✎",
    "published": "✓",
    "consistent": "✓",
    "revoked": "✗",
    "active": "✓",
}

ADMIN_MEDIA_CSS = {"all": ["flowplatform/admin.css"]}


def pretty_json(value: Any, *, limit: int = JSON_DISPLAY_LIMIT) -> SafeString:
    """``value`` as indented JSON in an escaped ``<pre>`` block."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n… cut at {limit:,} of {len(text):,} characters"
    return format_html('<pre class="fp-json">{}</pre>', text)


def status_badge(status: str | None) -> SafeString:
    """A status as a labelled badge: the text and a symbol say it, the colour only helps."""
    if not status:
        return format_html('<span class="fp-badge fp-status-none">{}</span>', "—")
    icon = STATUS_ICONS.get(status, "•")
    css = status if status in STATUS_ICONS else "other"
    return format_html(
        '<span class="fp-badge fp-status-{}" title="status: {}">'
        '<span aria-hidden="true">{}</span> {}</span>',
        css,
        status,
        icon,
        status,
    )


ModelRef = type[Model] | Model | str


def admin_url(model: ModelRef, pk: Any = None, *, view: str = "change") -> str:
    """``model`` is a model, an instance, or an ``"app_label.ModelName"`` label (an app's
    admin links to another app's pages without importing it)."""
    if isinstance(model, str):
        app_label, _, model_name = model.partition(".")
        name = f"admin:{app_label}_{model_name.lower()}_{view}"
    else:
        opts = model._meta
        name = f"admin:{opts.app_label}_{opts.model_name}_{view}"
    return reverse(name, args=[pk]) if view in {"change", "delete", "history"} else reverse(name)


def admin_link(model: ModelRef, pk: Any, text: Any) -> SafeString | str:
    """A link to the change page of ``model`` ``pk``, built from the id alone (no query)."""
    if pk is None:
        return "—"
    try:
        url = admin_url(model, pk)
    except NoReverseMatch:
        return str(text)
    return format_html('<a href="{}">{}</a>', url, text)


def actor_display(actor: str) -> SafeString | str:
    """``modified_by`` as a person reads it: a user id becomes a link to that user (one
    query: for change pages, not list columns)."""
    if not actor or not actor.isdigit():
        return actor or "—"
    user_model = get_user_model()
    username = (
        user_model._default_manager.filter(pk=int(actor))
        .values_list(user_model.USERNAME_FIELD, flat=True)
        .first()
    )
    if username is None:
        return f"user {actor} (deleted)"
    return format_html("{} (user {})", admin_link(user_model, int(actor), username), actor)


def organization_link(obj: Any) -> SafeString | str:
    """A link to ``obj.organization`` (select it with the row to keep lists at one query)."""
    return admin_link("flowplatform.Organization", obj.organization_id, obj.organization.name)


def changelist_link(model: ModelRef, text: Any, **filters: Any) -> SafeString:
    """A link to ``model``'s list, filtered by ``filters`` (``?field=value``)."""
    url = admin_url(model, view="changelist")
    if filters:
        url += "?" + urlencode({k: str(v) for k, v in filters.items()})
    return format_html('<a href="{}">{}</a>', url, text)


def short_id(value: Any) -> str:
    text = str(value)
    return text[:8] + "…" if len(text) > 12 else text


def as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


class BoundedCountPaginator(Paginator):
    """Counts at most ``COUNT_LIMIT`` rows, so a list page over a huge table stays cheap."""

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet):
            # Only ids: the page's joins, annotations and ordering don't change the count.
            return object_list.order_by().values("pk")[:COUNT_LIMIT].count()
        return len(object_list)


class StaffAdmin(admin.ModelAdmin):
    """Defaults for the flowplatform admin: bounded list pages, UUID search, engine calls.

    ``uuid_search_fields`` are matched exactly when the search term is a UUID (an index
    lookup instead of casting every id to text); ``search_fields`` are the text fields.
    """

    show_full_result_count = False
    # Facet counts run one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = BoundedCountPaginator
    list_per_page = 100
    uuid_search_fields: tuple[str, ...] = ("id",)

    class Media:
        css = ADMIN_MEDIA_CSS

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        value = as_uuid(term) if term else None
        if value is not None and self.uuid_search_fields:
            query = Q()
            for field in self.uuid_search_fields:
                query |= Q(**{field: value})
            return queryset.filter(query), False
        return self.search_text(request, queryset, term)

    def search_text(
        self, request: HttpRequest, queryset: QuerySet, term: str
    ) -> tuple[QuerySet, bool]:
        return super().get_search_results(request, queryset, term)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A service refusing a save (``FlowplatformError``) is an error message, not a 500;
        the admin's transaction around the save has rolled back."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except FlowplatformError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def staff_actor(self, request: HttpRequest) -> str:
        """What ``modified_by`` records for a staff change: the staff user's id."""
        return str(request.user.pk)

    def run_for_each(
        self,
        request: HttpRequest,
        objects: Iterable[T],
        call: Callable[[T], Model],
        *,
        done: str,
        log: str,
        changed: Callable[[T, Model], bool] | None = None,
    ) -> int:
        """Call a service for each object; log successes, report failures; return successes.

        Each call runs in its own transaction, so one refused row doesn't undo the others.
        ``changed(obj, result)`` tells a real change from a call that had nothing to do
        (reported as such and not logged).
        """
        if isinstance(objects, QuerySet):
            objects = objects[: ACTION_ROW_LIMIT + 1]  # "select all" may match millions
        objects = list(objects)
        if len(objects) > ACTION_ROW_LIMIT:
            self.message_user(
                request,
                f"Select at most {ACTION_ROW_LIMIT} rows for this action; narrow the list "
                "with filters.",
                messages.ERROR,
            )
            return 0
        succeeded = 0
        for obj in objects:
            try:
                with transaction.atomic():
                    result = call(obj)
            except FlowplatformError as exc:
                self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
                continue
            if changed is not None and not changed(obj, result):
                self.message_user(request, f"{obj}: nothing to do.", messages.INFO)
                continue
            self.log_change(request, result if result is not None else obj, log)
            succeeded += 1
        if succeeded:
            noun = "row" if succeeded == 1 else "rows"
            self.message_user(request, f"{done}: {succeeded} {noun}.", messages.SUCCESS)
        return succeeded


class ReadOnlyAdmin(StaffAdmin):
    """History and execution records: viewable, never added, edited or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    classes = ("fp-records",)
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def count_of(model: type[Model], fk: str, **filters: Any) -> Any:
    """An annotation counting ``model`` rows pointing at the outer row: one correlated
    subquery in the list query instead of one query per row (and no join fan-out)."""
    rows = (
        model._default_manager.filter(**{fk: OuterRef("pk")}, **filters)
        .order_by()
        .values(fk)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def adopt(obj: Model, saved: Model) -> None:
    """Make the admin's instance the row a service saved, so the admin's log entry, message
    and redirect describe what is really stored."""
    for field in type(saved)._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db
