"""Staff admin for the event outbox: view-only, newest first, searchable by flow and
execution id."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from flowplatform.admin_utils import (
    ReadOnlyAdmin,
    admin_link,
    organization_link,
    pretty_json,
    short_id,
)
from realtime.models import Event

EVENT_TYPES = (
    "flow_execution.created",
    "flow_execution.status_changed",
    "task_execution.created",
    "task_execution.updated",
    "task_execution.stale",
    "task_status.added",
    "task_output.created",
    "task_output.updated",
)


class EventTypeFilter(admin.SimpleListFilter):
    """The known types, without a DISTINCT over the whole outbox."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(t, t) for t in EVENT_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "type",
        "organization_link",
        "flow_link",
        "flow_execution_link",
        "task_name",
        "created_at",
    )
    list_select_related = ("organization",)
    list_filter = (EventTypeFilter, "organization", "created_at")
    search_fields = ("task_name",)
    uuid_search_fields = ("flow_id", "flow_execution_id", "organization_id")
    search_help_text = "An event number, a flow or flow execution id, or a task name."
    ordering = ("-id",)
    fields = (
        "id",
        "type",
        "organization_link",
        "flow_link",
        "flow_execution_link",
        "task_name",
        "created_at",
        "data_pretty",
    )
    readonly_fields = fields

    def search_text(
        self, request: HttpRequest, queryset: QuerySet[Event], term: str
    ) -> tuple[QuerySet[Event], bool]:
        if term.isdigit():
            return queryset.filter(id=int(term)), False
        return super().search_text(request, queryset, term)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: Event) -> str:
        return organization_link(obj)

    @admin.display(description="flow")
    def flow_link(self, obj: Event) -> str:
        return admin_link("executions.Flow", obj.flow_id, short_id(obj.flow_id))

    @admin.display(description="flow execution")
    def flow_execution_link(self, obj: Event) -> str:
        return admin_link(
            "executions.FlowExecution", obj.flow_execution_id, short_id(obj.flow_execution_id)
        )

    @admin.display(description="data")
    def data_pretty(self, obj: Event) -> str:
        return pretty_json(obj.data)
