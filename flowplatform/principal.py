"""Who is calling: the organization, the kind of credential and the actor name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    def organization_id(self):  # noqa: ANN201 - UUID
        return self.organization.id


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
