"""The test database under row-level security, as in production: created and migrated by
the owning role (``MIGRATION_DATABASE_URL``), used by the application's role
(``DATABASE_URL``: not superuser, not BYPASSRLS, owning no table).

pytest-django creates the test database through the ``default`` alias, so for that step
``default`` borrows the owner's credentials; then the application's role is created when
missing and granted on the test database (plus ``TRUNCATE``, which pytest-django's flush
between transactional tests needs), and ``default`` goes back to the application's role.

Requests, consumers and workers under test are subject to RLS exactly as in production.
The suite's own setup and assertion code (factories, ``Model.objects`` checks) sees every
organization, like a management command (``tenancy.bypass_process``); tests of RLS itself
turn that off with ``strict()``. Without a separate owner these fixtures
change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from flowplatform import tenancy
from flowplatform.dbrole import setup_app_role

_CREDENTIALS = ("USER", "PASSWORD", "OPTIONS")
_app_credentials: dict[str, Any] = {}


def separate_owner() -> bool:
    return tenancy.enabled() and tenancy.owner_configured()


def _use_owner_credentials() -> None:
    default = connections[DEFAULT_DB_ALIAS].settings_dict
    owner = connections[tenancy.OWNER_ALIAS].settings_dict
    if not _app_credentials:
        _app_credentials.update({key: default.get(key) for key in _CREDENTIALS})
    default.update({key: owner.get(key) for key in _CREDENTIALS})


def _use_app_credentials() -> None:
    connections[DEFAULT_DB_ALIAS].settings_dict.update(_app_credentials)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings: None) -> None:
    if separate_owner():
        _use_owner_credentials()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    if not tenancy.enabled():
        yield
        return
    if separate_owner():
        with django_db_blocker.unblock():
            default = connections[DEFAULT_DB_ALIAS]
            with default.cursor() as cursor:  # still the owner, on the test database
                setup_app_role(
                    cursor,
                    role=_app_credentials["USER"],
                    password=_app_credentials.get("PASSWORD") or None,
                    database=default.settings_dict["NAME"],
                    truncate=True,
                )
            connections.close_all()
            _use_app_credentials()
    tenancy.bypass_process()
    yield
    with django_db_blocker.unblock():
        connections.close_all()
    if separate_owner():
        _use_owner_credentials()  # the owner drops the test database


@contextmanager
def strict() -> Iterator[None]:
    """Code in the block, the test's own included, is subject to RLS like the application's
    (no organization unless it sets one). Connections other threads opened before keep
    their bypass: close them first (``sync_to_async(connections.close_all)``)."""
    tenancy.bypass_process(False)
    try:
        yield
    finally:
        tenancy.bypass_process(True)


def request_query_overhead() -> int:
    """Statements row-level security adds to an API request, as a test's query count sees it:
    the request's transaction (SAVEPOINT and RELEASE inside the test's) and setting its
    organization. For query budgets of tests that also run under RLS."""
    return 3 if tenancy.enabled() else 0
