"""Staff admin for task executions and the status history workers report: view-only."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from executions.admin.parts import duration, error_summary
from executions.models import Flow, FlowExecution, TaskExecution, TaskStatus
from flowplatform.admin_utils import (
    ReadOnlyAdmin,
    actor_display,
    admin_link,
    organization_link,
    pretty_json,
    short_id,
    status_badge,
)
from outputs.models import TaskOutput

# -- task executions and status history --------------------------------------------------------


@admin.register(TaskExecution)
class TaskExecutionAdmin(ReadOnlyAdmin):
    list_display = (
        "display_id",
        "task_name",
        "task_execution_idx",
        "status_display",
        "flow_execution_link",
        "flow_link",
        "organization_link",
        "attempts",
        "task_executor_name",
        "created_at",
        "updated_at",
    )
    list_display_links = ("display_id",)
    list_select_related = ("organization", "flow_execution__flow")
    list_filter = ("status", "stale_status", "edited_status", "organization", "created_at")
    search_fields = ("task_name", "task_executor_name")
    uuid_search_fields = ("id", "flow_execution_id", "organization_id")
    raw_id_fields = ("flow_execution",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "task_name",
                    "task_execution_idx",
                    "status_display",
                    "flow_execution_link",
                    "flow_link",
                    "organization_link",
                    "output_link",
                    "modified_by_display",
                )
            },
        ),
        (
            "Edits and staleness",
            {"fields": ("edited_status", "stale_status", "stale_reason_pretty")},
        ),
        ("Data", {"fields": ("input_pretty", "output_pretty", "error_pretty")}),
        (
            "Scheduling",
            {
                "fields": (
                    "task_executor_name",
                    "attempts",
                    "timeout_seconds",
                    "available_at",
                    "lease_owner",
                    "lease_expires_at",
                    "cancel_requested",
                )
            },
        ),
        (
            "Timing",
            {"fields": ("created_at", "started_at", "completed_at", "updated_at", "run_time")},
        ),
    )
    readonly_fields = (
        "id",
        "task_name",
        "task_execution_idx",
        "status_display",
        "flow_execution_link",
        "flow_link",
        "organization_link",
        "output_link",
        "modified_by_display",
        "edited_status",
        "stale_status",
        "stale_reason_pretty",
        "input_pretty",
        "output_pretty",
        "error_pretty",
        "task_executor_name",
        "attempts",
        "timeout_seconds",
        "available_at",
        "lease_owner",
        "lease_expires_at",
        "cancel_requested",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
        "run_time",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskExecution]:
        return super().get_queryset(request).select_related("organization", "flow_execution__flow")

    @admin.display(description="id", ordering="id")
    def display_id(self, obj: TaskExecution) -> str:
        return format_html('<span class="fp-mono" title="{}">{}</span>', obj.id, short_id(obj.id))

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: TaskExecution) -> str:
        return status_badge(obj.status)

    @admin.display(description="flow execution", ordering="flow_execution__created_at")
    def flow_execution_link(self, obj: TaskExecution) -> str:
        return admin_link(FlowExecution, obj.flow_execution_id, short_id(obj.flow_execution_id))

    @admin.display(description="flow", ordering="flow_execution__flow__display_name")
    def flow_link(self, obj: TaskExecution) -> str:
        flow = obj.flow_execution.flow
        return admin_link(Flow, flow.pk, flow.display_name)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: TaskExecution) -> str:
        return organization_link(obj)

    @admin.display(description="attempt")
    def attempts(self, obj: TaskExecution) -> str:
        return f"{obj.attempt} of {obj.max_attempts}"

    @admin.display(description="task output")
    def output_link(self, obj: TaskExecution) -> str:
        output = (
            TaskOutput.objects.filter(
                flow_execution_id=obj.flow_execution_id, task_name=obj.task_name
            )
            .values_list("pk", flat=True)
            .first()
        )
        return admin_link(TaskOutput, output, "current output") if output else "—"

    @admin.display(description="stale reason")
    def stale_reason_pretty(self, obj: TaskExecution) -> str:
        return pretty_json(obj.stale_reason)

    @admin.display(description="input")
    def input_pretty(self, obj: TaskExecution) -> str:
        return pretty_json(obj.input)

    @admin.display(description="output")
    def output_pretty(self, obj: TaskExecution) -> str:
        return pretty_json(obj.output)

    @admin.display(description="error")
    def error_pretty(self, obj: TaskExecution) -> str:
        if not obj.error:
            return "—"
        return format_html(
            "<strong>{}</strong>{}", error_summary(obj.error), pretty_json(obj.error)
        )

    @admin.display(description="modified by")
    def modified_by_display(self, obj: TaskExecution) -> str:
        return actor_display(obj.modified_by)

    @admin.display(description="run time")
    def run_time(self, obj: TaskExecution) -> str:
        return duration(obj.started_at, obj.completed_at)


@admin.register(TaskStatus)
class TaskStatusAdmin(ReadOnlyAdmin):
    list_display = (
        "task_name",
        "status_display",
        "flow_execution_link",
        "organization_link",
        "created_at",
        "seq",
    )
    list_select_related = ("organization",)
    list_filter = ("organization", "created_at")
    search_fields = ("task_name", "status")
    uuid_search_fields = ("id", "flow_execution_id", "organization_id")
    ordering = ("-seq",)
    raw_id_fields = ("flow_execution",)
    fields = (
        "id",
        "seq",
        "task_name",
        "status_display",
        "flow_execution_link",
        "organization_link",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: TaskStatus) -> str:
        return status_badge(obj.status)

    @admin.display(description="flow execution")
    def flow_execution_link(self, obj: TaskStatus) -> str:
        return admin_link(FlowExecution, obj.flow_execution_id, short_id(obj.flow_execution_id))

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: TaskStatus) -> str:
        return organization_link(obj)
