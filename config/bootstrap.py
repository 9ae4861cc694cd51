"""Idempotent demo setup for the embedded run: organization, staff user, keys, example flow."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from executions.examples import ensure_example_flow
from flowplatform.models import ApiKey, Organization
from flowplatform.services import (
    add_member,
    create_api_key,
    find_active_api_key,
    get_or_create_user,
)

logger = logging.getLogger(__name__)

DEMO_ORGANIZATION = "demo"
DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"


@dataclass(frozen=True)
class DemoSetup:
    organization: Organization
    user_key: str
    service_key: str
    flow_id: str | None


def _keys_file() -> Path:
    return Path(settings.SQLITE_PATH).parent / "demo-keys.json"


def _reuse_or_create(
    stored: str | None, *, organization: Organization, kind: str, user=None
) -> str:  # noqa: ANN001
    if stored:
        key = find_active_api_key(raw_key=stored)
        if key is not None and key.organization_id == organization.id and key.kind == kind:
            return stored
    _, raw = create_api_key(organization=organization, kind=kind, user=user, name=f"demo {kind}")
    return raw


@transaction.atomic
def bootstrap_demo() -> DemoSetup:
    """Create (or find) the demo organization, a staff user and one key of each kind.

    Keys are shown once by design; for the embedded demo their secrets are kept in a local
    file next to the database so that every start can print them again.
    """
    org, _ = Organization.objects.get_or_create(name=DEMO_ORGANIZATION)
    user = get_or_create_user(username=DEMO_USERNAME, password=DEMO_PASSWORD, is_staff=True)
    add_member(organization=org, user=user)
    path = _keys_file()
    stored = json.loads(path.read_text()) if path.exists() else {}
    user_key = _reuse_or_create(
        stored.get("user"), organization=org, kind=ApiKey.Kind.USER, user=user
    )
    service_key = _reuse_or_create(
        stored.get("service"), organization=org, kind=ApiKey.Kind.SERVICE
    )
    path.write_text(json.dumps({"user": user_key, "service": service_key}))
    path.chmod(0o600)
    flow_id = _load_example_flow(org, actor=str(user.pk))
    return DemoSetup(organization=org, user_key=user_key, service_key=service_key, flow_id=flow_id)


def _load_example_flow(org: Organization, *, actor: str) -> str | None:
    return str(ensure_example_flow(organization=org, actor=actor).id)
