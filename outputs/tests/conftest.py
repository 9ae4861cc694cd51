from __future__ import annotations

import pytest

from executions.models import FlowExecution
from outputs.tests.factories import make_flow_execution


@pytest.fixture
def flow_execution(tenant) -> FlowExecution:  # noqa: ANN001
    return make_flow_execution(tenant.organization)


@pytest.fixture
def outsider_execution(outsider) -> FlowExecution:  # noqa: ANN001
    return make_flow_execution(outsider.organization)
