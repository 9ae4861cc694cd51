"""Staff admin for credentials: members, service accounts, API keys (the organizations'
page, which shows every app's rows of an organization, is the project's: ``config.admin``).

API keys are created through ``flowplatform.services.create_api_key``: the secret is shown
once, in a message after saving, and never again (only its prefix). Keys are revoked with the
"Revoke" action (``revoke_api_key``), never edited or deleted here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from flowplatform.admin_utils import (
    StaffAdmin,
    admin_link,
    adopt,
    changelist_link,
    count_of,
    organization_link,
    status_badge,
)
from flowplatform.models import ApiKey, Membership, ServiceAccount
from flowplatform.services import (
    add_member,
    create_api_key,
    revoke_api_key,
)

admin.site.site_header = "flowplatform admin"
admin.site.site_title = "flowplatform admin"
admin.site.index_title = "Staff console (all organizations)"


@admin.register(Membership)
class MembershipAdmin(StaffAdmin):
    list_display = ("user", "organization_link", "role", "created_at")
    list_select_related = ("user", "organization")
    list_filter = ("role", "organization")
    search_fields = ("user__username", "user__email", "organization__name")
    uuid_search_fields = ("organization_id",)
    autocomplete_fields = ("organization", "user")
    readonly_fields = ("created_at",)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: Membership) -> str:
        return organization_link(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None:
            return ("organization", "user", "created_at")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        adopt(obj, add_member(organization=obj.organization, user=obj.user, role=obj.role))


@admin.register(ServiceAccount)
class ServiceAccountAdmin(StaffAdmin):
    list_display = ("name", "organization_link", "active_key_count", "created_at")
    list_select_related = ("organization",)
    list_filter = ("organization",)
    search_fields = ("name", "organization__name")
    uuid_search_fields = ("id", "organization_id")
    autocomplete_fields = ("organization",)
    readonly_fields = ("id", "created_at", "keys")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServiceAccount]:
        return (
            super()
            .get_queryset(request)
            .annotate(_active_keys=count_of(ApiKey, "service_account", revoked_at__isnull=True))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None:
            return ("id", "organization", "created_at", "keys")
        return self.readonly_fields

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: ServiceAccount) -> str:
        return organization_link(obj)

    @admin.display(description="active keys", ordering="_active_keys")
    def active_key_count(self, obj: ServiceAccount) -> int:
        return obj._active_keys

    @admin.display(description="API keys")
    def keys(self, obj: ServiceAccount) -> str:
        if obj.pk is None:
            return "—"
        return changelist_link(ApiKey, "this account's keys", service_account=obj.pk)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting would silently drop its keys; revoke them instead.
        return False


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ApiKeyCreateForm(forms.ModelForm):
    """Collects what ``create_api_key`` needs; the service generates prefix and hash."""

    class Meta:
        model = ApiKey
        fields = ("organization", "kind", "user", "service_account", "name", "read_only")
        help_texts = {
            "user": "Required for a user key; the user becomes a member of the organization.",
            "service_account": (
                "For a service key; left empty, the organization's 'workers' account is used."
            ),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, org = data.get("kind"), data.get("organization")
        user, account = data.get("user"), data.get("service_account")
        if kind == ApiKey.Kind.USER:
            if user is None:
                self.add_error("user", "A user key needs a user.")
            if account is not None:
                self.add_error("service_account", "A user key has no service account.")
        elif kind == ApiKey.Kind.SERVICE:
            if user is not None:
                self.add_error("user", "A service key has no user.")
            if account is not None and org is not None and account.organization_id != org.pk:
                self.add_error(
                    "service_account", "This service account belongs to another organization."
                )
        return data

    def _get_validation_exclusions(self) -> set[str]:
        # The owner rules are checked in clean() with clearer messages, and a service key may
        # leave its account to the service (the model constraint would refuse the blank).
        return super()._get_validation_exclusions() | {"user", "service_account"}


@admin.register(ApiKey)
class ApiKeyAdmin(StaffAdmin):
    list_display = (
        "prefix_display",
        "name",
        "kind",
        "organization_link",
        "owner",
        "read_only",
        "state",
        "created_at",
        "last_used_at",
    )
    list_select_related = ("organization", "user", "service_account")
    list_filter = (RevokedFilter, "kind", "read_only", "organization")
    search_fields = ("^prefix", "name", "user__username", "service_account__name")
    uuid_search_fields = ("id", "organization_id")
    autocomplete_fields = ("organization", "user", "service_account")
    actions = ("revoke",)
    add_form = ApiKeyCreateForm
    change_readonly_fields = (
        "id",
        "prefix_display",
        "name",
        "kind",
        "organization",
        "user",
        "service_account",
        "read_only",
        "state",
        "created_at",
        "last_used_at",
        "revoked_at",
    )

    @admin.display(description="key", ordering="prefix")
    def prefix_display(self, obj: ApiKey) -> str:
        return format_html('<code class="fp-mono">{}…</code>', obj.prefix)

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: ApiKey) -> str:
        return organization_link(obj)

    @admin.display(description="owner")
    def owner(self, obj: ApiKey) -> str:
        if obj.user_id is not None:
            return admin_link(get_user_model(), obj.user_id, obj.user)
        return admin_link(ServiceAccount, obj.service_account_id, obj.service_account.name)

    @admin.display(description="state", ordering="revoked_at")
    def state(self, obj: ApiKey) -> str:
        return status_badge("revoked" if obj.is_revoked else "active")

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ApiKeyCreateForm.Meta.fields
        return self.change_readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.change_readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A key never changes after creation: its page is view-only; revoking is an action.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("flowplatform.change_apikey")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:  # pragma: no cover - the change page is view-only
            return
        key, secret = create_api_key(
            organization=obj.organization,
            kind=obj.kind,
            user=obj.user,
            service_account=obj.service_account,
            name=obj.name,
            read_only=obj.read_only,
        )
        adopt(obj, key)
        self.message_user(
            request,
            format_html(
                "API key {} created. Its secret is shown only this once — copy it now: "
                '<code class="fp-mono">{}</code>',
                key.prefix + "…",
                secret,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        live = queryset.filter(revoked_at__isnull=True)
        done = self.run_for_each(
            request,
            live,
            lambda key: revoke_api_key(api_key=key),
            done="Revoked",
            log="Revoked the API key.",
        )
        if not done and not live.exists():
            self.message_user(request, "The selected keys were already revoked.", messages.INFO)
