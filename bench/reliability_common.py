"""Setup shared by the ``bench/reliability_*.py`` scripts: the database (created when a
PostgreSQL URL names one that does not exist), migrations, and a fresh organization with
keys. Call after setting ``DJANGO_SETTINGS_MODULE`` and the database environment."""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import urlparse, urlunparse


def ensure_database() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def migrate() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from flowplatform import tenancy

    tenancy.bypass_process()  # a setup script sees every organization, like a command


def new_tenant(prefix: str) -> tuple[Any, str, str]:
    """A fresh organization with a user key and a service key: (organization, user, service)."""
    from flowplatform.services import create_api_key, create_organization, get_or_create_user

    suffix = uuid.uuid4().hex[:8]
    organization = create_organization(name=f"{prefix}-{suffix}")
    user = get_or_create_user(username=f"{prefix}-{suffix}")
    _, user_key = create_api_key(organization=organization, kind="user", user=user)
    _, service_key = create_api_key(organization=organization, kind="service")
    return organization, user_key, service_key
