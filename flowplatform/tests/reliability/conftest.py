"""Fixtures of the reliability suite: the end-to-end server and worker fixtures of
``executions/tests/e2e/conftest.py`` (real uvicorn and worker processes on loopback, against
the test database), plus small helpers shared by the rows of issue 11."""

from __future__ import annotations

import pytest

from executions.tests.e2e.conftest import (  # noqa: F401 - fixtures and the SQLite-file hook
    e2e_server,
    pytest_collection_modifyitems,
    start_worker,
)
from executions.tests.factories import make_flow, make_flow_execution


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def flow(tenant):  # noqa: ANN001, ANN201
    return make_flow(tenant.organization, display_name="mine")


@pytest.fixture
def execution(flow):  # noqa: ANN001, ANN201
    return make_flow_execution(flow)


@pytest.fixture
def foreign_flow(outsider):  # noqa: ANN001, ANN201
    return make_flow(outsider.organization, display_name="theirs")


@pytest.fixture
def foreign_execution(foreign_flow):  # noqa: ANN001, ANN201
    return make_flow_execution(foreign_flow)
