"""Staff admin for task outputs: view-only (outputs follow their task executions through the
services; a person's edit goes through the API's PUT)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from flowplatform.admin_utils import (
    ReadOnlyAdmin,
    admin_link,
    changelist_link,
    organization_link,
    pretty_json,
    short_id,
    status_badge,
)
from outputs.models import TaskOutput


@admin.register(TaskOutput)
class TaskOutputAdmin(ReadOnlyAdmin):
    list_display = (
        "display_id",
        "task_name",
        "status_display",
        "flow_execution_link",
        "flow_link",
        "organization_link",
        "flow_version",
        "edited_status",
        "stale_display",
        "updated_at",
        "modified_by",
    )
    list_display_links = ("display_id",)
    list_select_related = ("organization", "flow_execution__flow")
    list_filter = ("status", "stale_status", "edited_status", "organization", "created_at")
    search_fields = ("task_name",)
    uuid_search_fields = ("id", "flow_execution_id", "organization_id")
    raw_id_fields = ("flow_execution",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "task_name",
                    "status_display",
                    "flow_execution_link",
                    "flow_link",
                    "organization_link",
                    "flow_version",
                    "executions",
                    "modified_by",
                )
            },
        ),
        ("Edits and staleness", {"fields": ("edited_status", "stale_display")}),
        ("Data", {"fields": ("summary_pretty", "output_pretty", "tags_pretty")}),
        ("Timing", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "id",
        "task_name",
        "status_display",
        "flow_execution_link",
        "flow_link",
        "organization_link",
        "flow_version",
        "executions",
        "modified_by",
        "edited_status",
        "stale_display",
        "summary_pretty",
        "output_pretty",
        "tags_pretty",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskOutput]:
        return super().get_queryset(request).select_related("organization", "flow_execution__flow")

    @admin.display(description="id", ordering="id")
    def display_id(self, obj: TaskOutput) -> str:
        return format_html('<span class="fp-mono" title="{}">{}</span>', obj.id, short_id(obj.id))

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: TaskOutput) -> str:
        return status_badge(obj.status)

    @admin.display(description="stale", ordering="stale_status")
    def stale_display(self, obj: TaskOutput) -> str:
        return status_badge(obj.stale_status)

    @admin.display(description="flow execution", ordering="flow_execution__created_at")
    def flow_execution_link(self, obj: TaskOutput) -> str:
        return admin_link(
            "executions.FlowExecution", obj.flow_execution_id, short_id(obj.flow_execution_id)
        )

    @admin.display(description="flow", ordering="flow_execution__flow__display_name")
    def flow_link(self, obj: TaskOutput) -> str:
        flow = obj.flow_execution.flow
        return admin_link("executions.Flow", flow.pk, flow.display_name)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: TaskOutput) -> str:
        return organization_link(obj)

    @admin.display(description="task executions")
    def executions(self, obj: TaskOutput) -> str:
        return changelist_link(
            "executions.TaskExecution",
            f"executions of {obj.task_name}",
            flow_execution=obj.flow_execution_id,
            task_name=obj.task_name,
        )

    @admin.display(description="summary")
    def summary_pretty(self, obj: TaskOutput) -> str:
        return pretty_json(obj.summary)

    @admin.display(description="output")
    def output_pretty(self, obj: TaskOutput) -> str:
        return pretty_json(obj.output)

    @admin.display(description="tags")
    def tags_pretty(self, obj: TaskOutput) -> str:
        return pretty_json(obj.tags)
