"""Staff admin for flow executions: the executions console. Read-mostly: execution
records, outputs and history are view-only, statuses change only through the engine;
re-execute and cancel call the same engine functions as the API, with the staff user's id
as the actor."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from executions.admin.parts import (
    EngineOperation,
    FlowFilter,
    TaskExecutionInline,
    TaskOutputInline,
    TaskStatusInline,
    duration,
)
from executions.engine import lifecycle
from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution, TaskStatus
from flowplatform.admin_utils import (
    ReadOnlyAdmin,
    actor_display,
    admin_link,
    as_uuid,
    changelist_link,
    count_of,
    organization_link,
    pretty_json,
    short_id,
    status_badge,
)
from outputs.models import TaskOutput
from realtime.models import Event

# -- flow executions --------------------------------------------------------------------------
ENGINE_OPERATIONS = {
    "reexecute": EngineOperation("reexecute", "Re-execute", "Re-executed", only_stale=False),
    "reexecute-stale": EngineOperation(
        "reexecute-stale", "Re-execute stale tasks", "Re-executed the stale tasks", only_stale=True
    ),
    "cancel": EngineOperation("cancel", "Cancel", "Cancellation requested", css="fp-danger"),
}


@admin.register(FlowExecution)
class FlowExecutionAdmin(ReadOnlyAdmin):
    list_display = (
        "display_id",
        "flow_link",
        "organization_link",
        "status_display",
        "task_count",
        "created_at",
        "run_time",
        "modified_by",
    )
    list_display_links = ("display_id",)
    list_select_related = ("flow", "organization")
    list_filter = ("status", "organization", FlowFilter, "created_at")
    search_fields = ("flow__display_name",)
    uuid_search_fields = ("id", "flow_id", "organization_id")
    search_help_text = "A flow execution or flow id, a flow name or a task name."
    date_hierarchy = "created_at"
    raw_id_fields = ("flow",)
    actions = ("reexecute", "reexecute_stale", "cancel")
    inlines = (TaskExecutionInline, TaskOutputInline, TaskStatusInline)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("id", "status_display"),
                    ("organization_link", "flow_link", "flow_version_link"),
                    ("created_at", "started_at", "completed_at", "run_time"),
                    ("modified_by_display", "updated_at"),
                    "related",
                )
            },
        ),
        ("Input", {"fields": ("input_pretty",)}),
    )
    readonly_fields = (
        "id",
        "status_display",
        "organization_link",
        "flow_link",
        "flow_version_link",
        "modified_by_display",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
        "run_time",
        "input_pretty",
        "related",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[FlowExecution]:
        return (
            super()
            .get_queryset(request)
            .select_related("flow", "organization")
            .annotate(_tasks=count_of(TaskExecution, "flow_execution"))
        )

    def search_text(
        self, request: HttpRequest, queryset: QuerySet, term: str
    ) -> tuple[QuerySet, bool]:
        if not term:
            return queryset, False
        has_task = TaskExecution.objects.filter(
            flow_execution=OuterRef("pk"), task_name__icontains=term
        )
        return queryset.filter(Q(Exists(has_task)) | Q(flow__display_name__icontains=term)), False

    @admin.display(description="id", ordering="id")
    def display_id(self, obj: FlowExecution) -> str:
        return format_html('<span class="fp-mono" title="{}">{}</span>', obj.id, short_id(obj.id))

    @admin.display(description="flow", ordering="flow__display_name")
    def flow_link(self, obj: FlowExecution) -> str:
        return admin_link(Flow, obj.flow_id, obj.flow.display_name)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: FlowExecution) -> str:
        return organization_link(obj)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: FlowExecution) -> str:
        return status_badge(obj.status)

    @admin.display(description="tasks", ordering="_tasks")
    def task_count(self, obj: FlowExecution) -> int:
        return obj._tasks

    @admin.display(description="flow version")
    def flow_version_link(self, obj: FlowExecution) -> str:
        version = FlowVersion.objects.filter(flow_id=obj.flow_id, version=obj.flow_version).first()
        text = f"v{obj.flow_version}"
        return admin_link(FlowVersion, version.pk, text) if version else text

    @admin.display(description="modified by")
    def modified_by_display(self, obj: FlowExecution) -> str:
        return actor_display(obj.modified_by)

    @admin.display(description="run time")
    def run_time(self, obj: FlowExecution) -> str:
        return duration(obj.started_at, obj.completed_at)

    @admin.display(description="input")
    def input_pretty(self, obj: FlowExecution) -> str:
        return pretty_json(obj.input)

    @admin.display(description="related")
    def related(self, obj: FlowExecution) -> str:
        return format_html(
            "{} · {} · {} · {}",
            changelist_link(TaskExecution, "task executions", flow_execution=obj.pk),
            changelist_link(TaskOutput, "task outputs", flow_execution=obj.pk),
            changelist_link(TaskStatus, "status history", flow_execution=obj.pk),
            changelist_link(Event, "events", flow_execution_id=obj.pk),
        )

    # Engine operations: bulk actions on the list, buttons on the change page.

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("executions.change_flowexecution")

    def operate(self, request: HttpRequest, executions: Any, operation: EngineOperation) -> int:
        actor = self.staff_actor(request)

        def call(execution: FlowExecution) -> FlowExecution:
            if operation.key == "cancel":
                return lifecycle.cancel_flow_execution(execution=execution, actor=actor)
            return lifecycle.reexecute_flow_execution(
                execution=execution, actor=actor, only_stale=operation.only_stale
            )

        def changed(before: FlowExecution, after: FlowExecution) -> bool:
            stored = FlowExecution.objects.filter(pk=after.pk).values_list("status", "updated_at")
            return stored.get() != (before.status, before.updated_at)

        return self.run_for_each(
            request,
            executions,
            call,
            done=operation.done,
            log=f"{operation.done} (admin).",
            changed=changed,
        )

    @admin.action(description="Re-execute all tasks", permissions=["operate"])
    def reexecute(self, request: HttpRequest, queryset: QuerySet[FlowExecution]) -> None:
        self.operate(request, queryset, ENGINE_OPERATIONS["reexecute"])

    @admin.action(description="Re-execute stale tasks only", permissions=["operate"])
    def reexecute_stale(self, request: HttpRequest, queryset: QuerySet[FlowExecution]) -> None:
        self.operate(request, queryset, ENGINE_OPERATIONS["reexecute-stale"])

    @admin.action(description="Cancel", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[FlowExecution]) -> None:
        self.operate(request, queryset, ENGINE_OPERATIONS["cancel"])

    def get_urls(self) -> list[Any]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_operate"
        view = self.admin_site.admin_view(self.operate_view)
        return [path("<path:object_id>/operate/<str:key>/", view, name=name), *super().get_urls()]

    def operate_view(self, request: HttpRequest, object_id: str, key: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        operation = ENGINE_OPERATIONS.get(key)
        if operation is None or not self.has_operate_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        pk = as_uuid(object_id)
        if pk is None:
            raise Http404("No such flow execution.")
        execution = get_object_or_404(self.get_queryset(request), pk=pk)
        self.operate(request, [execution], operation)
        return HttpResponseRedirect(
            reverse("admin:executions_flowexecution_change", args=[execution.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if self.has_operate_permission(request):
            extra_context["engine_operations"] = [
                op.with_url(
                    reverse("admin:executions_flowexecution_operate", args=[object_id, op.key])
                )
                for op in ENGINE_OPERATIONS.values()
            ]
        return super().change_view(request, object_id, form_url, extra_context)
