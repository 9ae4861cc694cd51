"""Staff admin for flows and their versions. Flow edits go through the flows service (a
changed definition makes a new FlowVersion)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
)
from django.utils.html import format_html

from executions.admin.parts import (
    FlowForm,
)
from executions.enums import FlowStatus
from executions.models import Flow, FlowExecution, FlowVersion
from executions.services import flows
from flowplatform.admin_utils import (
    ReadOnlyAdmin,
    StaffAdmin,
    admin_link,
    adopt,
    changelist_link,
    organization_link,
    pretty_json,
    status_badge,
)
from realtime.models import Event

FLOW_EDITABLE = ("display_name", "description", "tags", "definition")

# -- flows ------------------------------------------------------------------------------------


@admin.register(Flow)
class FlowAdmin(StaffAdmin):
    form = FlowForm
    list_display = (
        "display_name",
        "organization_link",
        "status_display",
        "version",
        "executions_link",
        "deleted",
        "updated_at",
        "modified_by",
    )
    list_select_related = ("organization",)
    list_filter = ("status", "deleted", "organization", "created_at")
    search_fields = ("display_name",)
    uuid_search_fields = ("id", "organization_id")
    date_hierarchy = "created_at"
    autocomplete_fields = ("organization",)
    actions = ("publish", "unpublish", "soft_delete")
    readonly_fields = (
        "id",
        "status_display",
        "version",
        "deleted",
        "created_at",
        "updated_at",
        "modified_by",
        "related",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Flow | None = None) -> Any:
        editable = list(FLOW_EDITABLE)
        if obj is None:
            return [(None, {"fields": ["organization", *editable]})]
        return [
            (None, {"fields": ["id", "organization_link", "status_display", "version"]}),
            ("Edit (saved through the flows service)", {"fields": editable}),
            (None, {"fields": ["related", "deleted", "created_at", "updated_at", "modified_by"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Flow | None = None) -> Any:
        if obj is None:
            return ()
        return (*self.readonly_fields, "organization_link")

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: Flow) -> str:
        return organization_link(obj)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Flow) -> str:
        return status_badge(obj.status)

    @admin.display(description="executions")
    def executions_link(self, obj: Flow) -> str:
        return changelist_link(FlowExecution, "executions →", flow=obj.pk)

    @admin.display(description="related")
    def related(self, obj: Flow) -> str:
        return format_html(
            "{} · {} · {}",
            changelist_link(FlowVersion, "versions", flow=obj.pk),
            changelist_link(FlowExecution, "executions", flow=obj.pk),
            changelist_link(Event, "events", flow_id=obj.pk),
        )

    def save_model(self, request: HttpRequest, obj: Flow, form: Any, change: bool) -> None:
        actor = self.staff_actor(request)
        if not change:
            saved = flows.create_flow(
                organization=obj.organization,
                actor=actor,
                display_name=obj.display_name,
                description=obj.description,
                definition=obj.definition,
                tags=obj.tags,
            )
        else:
            changes = {f: getattr(obj, f) for f in FLOW_EDITABLE if f in form.changed_data}
            if not changes:
                return
            saved = flows.update_flow(
                organization=obj.organization, flow_id=obj.pk, actor=actor, **changes
            )
        adopt(obj, saved)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Flow], status: str) -> None:
        actor = self.staff_actor(request)
        self.run_for_each(
            request,
            queryset,
            lambda flow: flows.update_flow(
                organization=flow.organization, flow_id=flow.pk, actor=actor, status=status
            ),
            done=f"Marked {status}",
            log=f"Marked {status} (admin).",
        )

    @admin.action(description="Publish selected flows", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        self._set_status(request, queryset, FlowStatus.PUBLISHED)

    @admin.action(description="Mark selected flows as draft", permissions=["change"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        self._set_status(request, queryset, FlowStatus.DRAFT)

    @admin.action(description="Soft-delete selected flows", permissions=["change"])
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        actor = self.staff_actor(request)

        def delete(flow: Flow) -> Flow:
            flows.delete_flow(organization=flow.organization, flow_id=flow.pk, actor=actor)
            return flow

        self.run_for_each(
            request,
            queryset.filter(deleted=False),
            delete,
            done="Soft-deleted",
            log="Soft-deleted (admin).",
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Executions protect their flow; flows are soft-deleted through the API.
        return False


@admin.register(FlowVersion)
class FlowVersionAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "flow_link",
        "version",
        "organization_link",
        "created_at",
        "created_by",
    )
    list_select_related = ("flow", "organization")
    list_filter = ("organization", "created_at")
    search_fields = ("flow__display_name",)
    uuid_search_fields = ("id", "flow_id")
    fields = (
        "id",
        "flow_link",
        "version",
        "organization_link",
        "created_at",
        "created_by",
        "executions",
        "definition_pretty",
    )
    readonly_fields = fields

    @admin.display(description="flow", ordering="flow__display_name")
    def flow_link(self, obj: FlowVersion) -> str:
        return admin_link(Flow, obj.flow_id, obj.flow.display_name)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: FlowVersion) -> str:
        return organization_link(obj)

    @admin.display(description="executions")
    def executions(self, obj: FlowVersion) -> str:
        return changelist_link(
            FlowExecution,
            "executions pinned to this version",
            flow=obj.flow_id,
            flow_version=obj.version,
        )

    @admin.display(description="definition")
    def definition_pretty(self, obj: FlowVersion) -> str:
        return pretty_json(obj.definition)
