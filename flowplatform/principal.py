"""Who is calling: the organization, the kind of credential and the actor name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowplatform.exceptions import Forbidden

if TYPE_CHECKING:
    from flowplatform.models import ApiKey, Organization


@dataclass(frozen=True)
class Principal:
    organization: Organization
    kind: str  # "user" | "service"
    actor: str  # what ``modified_by`` records
    read_only: bool = False
    api_key: ApiKey | None = None
    via_session: bool = False
    user_id: int | None = None

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def organization_id(self) -> UUID:
        return self.organization.id

    def actor_for(self, body: Mapping[str, Any]) -> str:
        """``modified_by`` of a write: the user's id for user keys; for service keys the
        body's ``modified_by``, else ``system`` (DESIGN §5)."""
        if self.is_service and body.get("modified_by"):
            return str(body["modified_by"])
        return self.actor

    def check_body_organization(self, body: Mapping[str, Any]) -> None:
        """A body may name the caller's organization, never another one (403)."""
        named = body.get("organization_id")
        if named is not None and str(named) != str(self.organization.id):
            raise Forbidden("organization_id does not match the caller's organization.")


class ServicePrincipalUser:
    """Stands in for ``request.user`` when a service key authenticates (no Django user)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, name: str) -> None:
        self.username = name

    def __str__(self) -> str:
        return self.username
