"""The fixture chain shared by every app: two organizations (a caller and an outsider), each
with a user key, a service key and API clients authenticated with them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from django.db import connections
from rest_framework.test import APIClient

from config import handlers
from executions.api import task_executions
from flowplatform.models import ApiKey, Organization
from flowplatform.services import create_api_key, create_organization, get_or_create_user
from flowplatform.tests.asgi_client import ASGIClient

# Row-level security (PostgreSQL with MIGRATION_DATABASE_URL): the owner creates and migrates
# the test database, the tests connect as the application's role. Inert otherwise.
from flowplatform.tests.rls_harness import (  # noqa: E402, F401
    django_db_modify_db_settings,
    django_db_setup,
)


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    from django.conf import settings

    from executions.tests.e2e.conftest import (
        pytest_collection_modifyitems as give_subprocesses_a_file_database,
    )

    # Here, not only in the e2e directory's conftest: tests elsewhere start servers too, and
    # a run of just their directory must give SQLite a file the servers can open.
    give_subprocesses_a_file_database(config, items)

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    has_redis = bool(os.environ.get("REDIS_URL"))
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    skip_redis = pytest.mark.skip(reason="needs Redis (set REDIS_URL)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not has_redis:
            item.add_marker(skip_redis)


@dataclass
class Tenant:
    organization: Organization
    user: object
    user_key: str
    service_key: str
    user_api_key: ApiKey
    service_api_key: ApiKey

    def client(self, kind: str = "user") -> APIClient:
        client = APIClient()
        key = self.user_key if kind == "user" else self.service_key
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client


def make_tenant(name: str, **org_kwargs) -> Tenant:  # noqa: ANN003
    org = create_organization(name=name, **org_kwargs)
    user = get_or_create_user(username=f"{name}-owner")
    user_api_key, user_key = create_api_key(organization=org, kind="user", user=user)
    service_api_key, service_key = create_api_key(organization=org, kind="service")
    return Tenant(org, user, user_key, service_key, user_api_key, service_api_key)


@pytest.fixture
def tenant(db) -> Tenant:  # noqa: ANN001
    return make_tenant("acme")


@pytest.fixture
def outsider(db) -> Tenant:  # noqa: ANN001
    """A second organization whose resources the first must never see."""
    return make_tenant("globex")


@pytest.fixture
def organization(tenant: Tenant) -> Organization:
    return tenant.organization


def _client(request: pytest.FixtureRequest, tenant: Tenant, kind: str) -> APIClient | ASGIClient:
    """A client authenticated for ``tenant``; in a module marked ``production_path`` (the
    seed endpoints' contract tests) it sends requests through the production ASGI
    application, each in transactions of its own."""
    if request.node.get_closest_marker("production_path") is None:
        return tenant.client(kind)
    client = ASGIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {tenant.user_key if kind == 'user' else tenant.service_key}"
    )
    return client


@pytest.fixture
def user_client(request: pytest.FixtureRequest, tenant: Tenant) -> APIClient | ASGIClient:
    return _client(request, tenant, "user")


@pytest.fixture
def service_client(request: pytest.FixtureRequest, tenant: Tenant) -> APIClient | ASGIClient:
    return _client(request, tenant, "service")


@pytest.fixture
def outsider_client(request: pytest.FixtureRequest, outsider: Tenant) -> APIClient | ASGIClient:
    return _client(request, outsider, "user")


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session", autouse=True)
def _threads_let_go_of_their_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of the run, before the test database is dropped (this fixture is set up
    after it, so torn down before): the threads that decide batches of reports and run
    requests close their database connections."""
    request.getfixturevalue("django_db_setup")
    yield
    close_connections_of(task_executions._batch_threads)
    for thread in handlers._threads.take_all():
        close_connections_of(thread)


def close_connections_of(executor: ThreadPoolExecutor) -> None:
    """``connections.close_all()`` on every thread of ``executor``: each closes its own, then
    waits for the others, so no thread takes two of them."""
    count = len(executor._threads)
    if not count:
        return
    barrier = threading.Barrier(count)

    def close() -> None:
        connections.close_all()
        barrier.wait(timeout=10)

    for future in [executor.submit(close) for _ in range(count)]:
        future.result(timeout=20)
