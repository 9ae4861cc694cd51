"""Who may call what: organization principals, service-only endpoints, read-only keys."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from flowplatform.exceptions import Forbidden, Unauthorized
from flowplatform.principal import Principal


def _principal(request: Request) -> Principal:
    principal = request.auth
    if not isinstance(principal, Principal):
        raise Unauthorized()
    return principal


class IsOrganizationPrincipal(BasePermission):
    """Any authenticated key or session of an organization; read-only keys only read."""

    def has_permission(self, request: Request, view) -> bool:  # noqa: ANN001
        principal = _principal(request)
        if principal.read_only and request.method not in SAFE_METHODS:
            raise Forbidden("This API key is read-only.")
        return True


class IsServiceKey(IsOrganizationPrincipal):
    """Internal endpoints: service keys only."""

    def has_permission(self, request: Request, view) -> bool:  # noqa: ANN001
        super().has_permission(request, view)
        if not _principal(request).is_service:
            raise Forbidden("This endpoint requires a service key.")
        return True


class IsUserPrincipal(IsOrganizationPrincipal):
    """Endpoints where a person acts (flow management): user keys and sessions only."""

    def has_permission(self, request: Request, view) -> bool:  # noqa: ANN001
        super().has_permission(request, view)
        if _principal(request).is_service:
            raise Forbidden("This endpoint requires a user key or session.")
        return True
