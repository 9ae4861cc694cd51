"""Who may call what: organization principals, service-only endpoints, read-only keys."""

from __future__ import annotations

import uuid

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
    """Any authenticated key or session of an organization; read-only keys only read; a
    JSON body naming another organization (``organization_id``) is forbidden on every
    endpoint, whether or not it declares the field (DESIGN §3)."""

    def has_permission(self, request: Request, view) -> bool:  # noqa: ANN001
        principal = _principal(request)
        if request.method not in SAFE_METHODS:
            if principal.read_only:
                raise Forbidden("This API key is read-only.")
            _check_body_organization(request, principal)
        return True


def _check_body_organization(request: Request, principal: Principal) -> None:
    """403 for a body ``organization_id`` that is a UUID other than the caller's. Anything
    else is left to the endpoint (ignored, or a 422 where it declares the field)."""
    if not request.content_type.startswith("application/json"):
        return
    data = request.data  # parsed once; the view reuses it
    named = data.get("organization_id") if isinstance(data, dict) else None
    if not isinstance(named, str):
        return
    try:
        organization_id = uuid.UUID(named)
    except ValueError:
        return
    if organization_id != principal.organization_id:
        raise Forbidden("organization_id does not match the caller's organization.")


class IsServiceKey(IsOrganizationPrincipal):
    """Internal endpoints: service keys only."""

    def has_permission(self, request: Request, view) -> bool:  # noqa: ANN001
        # The kind first: the answer must not depend on the body (BFLA checks expect 403).
        if not _principal(request).is_service:
            raise Forbidden("This endpoint requires a service key.")
        return super().has_permission(request, view)


class IsUserPrincipal(IsOrganizationPrincipal):
    """Endpoints where a person acts (flow management): user keys and sessions only."""

    def has_permission(self, request: Request, view) -> bool:  # noqa: ANN001
        if _principal(request).is_service:
            raise Forbidden("This endpoint requires a user key or session.")
        return super().has_permission(request, view)
