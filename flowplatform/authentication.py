"""DRF authentication: API keys (Bearer or X-API-Key) and Django sessions for browsers."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from flowplatform import tenancy
from flowplatform.exceptions import Unauthorized
from flowplatform.models import ApiKey, Membership
from flowplatform.principal import Principal, ServicePrincipalUser
from flowplatform.services import find_active_api_key, known_api_key, touch_api_key


def raw_key_from_headers(headers) -> str | None:  # noqa: ANN001 - HttpHeaders or dict
    """The API key sent in ``Authorization: Bearer`` or ``X-API-Key``; None if neither.

    Raises Unauthorized for a malformed ``Authorization`` header so garbage never falls
    through to the next authenticator.
    """
    header = headers.get("Authorization") or headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip() or " " in value.strip():
            raise Unauthorized("Malformed Authorization header; expected 'Bearer <api key>'.")
        return value.strip()
    api_key = headers.get("X-API-Key") or headers.get("x-api-key")
    return api_key.strip() if api_key else None


def principal_for_key(key: ApiKey) -> Principal:
    if key.kind == ApiKey.Kind.SERVICE:
        return Principal(
            organization=key.organization,
            kind="service",
            actor="system",
            read_only=key.read_only,
            api_key=key,
        )
    return Principal(
        organization=key.organization,
        kind="user",
        actor=str(key.user_id),
        read_only=key.read_only,
        api_key=key,
        user_id=key.user_id,
    )


def authenticate_raw_key(raw_key: str) -> tuple[object, Principal] | None:
    key = find_active_api_key(raw_key=raw_key)
    if key is None:
        return None
    touch_api_key(api_key=key)
    principal = principal_for_key(key)
    user = (
        key.user
        if key.user is not None
        else ServicePrincipalUser(
            f"service:{key.service_account.name}" if key.service_account else "service"
        )
    )
    return user, principal


def authenticates_without_queries(request: Request) -> bool:
    """Whether authenticating ``request`` needs no query: it carries an API key this process
    found and recorded lately (``known_api_key``). A session, or any other key, is looked
    up (a query: on a thread under ASGI)."""
    try:
        raw = raw_key_from_headers(request.headers)
    except Unauthorized:
        return True  # refused without a query
    return raw is not None and known_api_key(raw_key=raw) is not None


def principal_for_session_user(user) -> Principal | None:  # noqa: ANN001
    """A logged-in browser user acts for the first organization they belong to."""
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user)
        .order_by("created_at")
        .first()
    )
    if membership is None:
        return None
    return Principal(
        organization=membership.organization,
        kind="user",
        actor=str(user.pk),
        via_session=True,
        user_id=user.pk,
    )


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request):  # noqa: ANN201
        raw = raw_key_from_headers(request.headers)
        if raw is None:
            return None
        result = authenticate_raw_key(raw)
        if result is None:
            raise Unauthorized("Invalid or revoked API key.")
        request._request.principal_for_logs = result[1]
        # Keys are found before the organization is known (credential tables have no RLS);
        # from here on the request's transaction sees only this organization's rows.
        tenancy.set_organization(result[1].organization_id)
        return result

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class OrganizationSessionAuthentication(SessionAuthentication):
    """Session login (admin, browser pages), CSRF-checked by DRF, mapped to an organization."""

    def authenticate(self, request: Request):  # noqa: ANN201
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        principal = principal_for_session_user(user)
        if principal is None:
            return None
        request._request.principal_for_logs = principal
        tenancy.set_organization(principal.organization_id)
        return user, principal
