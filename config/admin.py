"""The staff console's organizations: each with its members, keys and flows, across the
apps (so it lives with the project's wiring, which sees them all)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from executions.models import Flow, FlowExecution
from flowplatform.admin_utils import StaffAdmin, adopt, changelist_link, count_of
from flowplatform.models import ApiKey, Membership, Organization, ServiceAccount
from flowplatform.services import create_organization


@admin.register(Organization)
class OrganizationAdmin(StaffAdmin):
    list_display = (
        "name",
        "id",
        "max_concurrent_executions",
        "member_count",
        "flow_count",
        "active_key_count",
        "created_at",
    )
    search_fields = ("name",)
    ordering = ("name",)
    fields = ("id", "name", "max_concurrent_executions", "created_at", "related")
    readonly_fields = ("id", "created_at", "related")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _members=count_of(Membership, "organization"),
                _flows=count_of(Flow, "organization", deleted=False),
                _active_keys=count_of(ApiKey, "organization", revoked_at__isnull=True),
            )
        )

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: Organization) -> int:
        return obj._members

    @admin.display(description="flows", ordering="_flows")
    def flow_count(self, obj: Organization) -> int:
        return obj._flows

    @admin.display(description="active API keys", ordering="_active_keys")
    def active_key_count(self, obj: Organization) -> int:
        return obj._active_keys

    @admin.display(description="related")
    def related(self, obj: Organization) -> str:
        if obj.pk is None:
            return "—"
        links = [
            changelist_link(Membership, "members", organization=obj.pk),
            changelist_link(ServiceAccount, "service accounts", organization=obj.pk),
            changelist_link(ApiKey, "API keys", organization=obj.pk),
            changelist_link(Flow, "flows", organization=obj.pk),
            changelist_link(FlowExecution, "flow executions", organization=obj.pk),
        ]
        return format_html(" · ".join(["{}"] * len(links)), *links)

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = create_organization(
            name=obj.name, max_concurrent_executions=obj.max_concurrent_executions
        )
        adopt(obj, created)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting an organization would erase its whole history; not a console action.
        return False
