from __future__ import annotations

import pytest

from executions.enums import FlowExecutionStatus
from executions.tests.engine.factories import DIAMOND, Worker, refresh, shape_definition, start

pytestmark = pytest.mark.django_db


def test_diamond_runs_to_completion(tenant, service_client):
    execution = start(tenant.organization, shape_definition(DIAMOND), input={"n": 1})
    assert execution.status == FlowExecutionStatus.RUNNING
    done = Worker(service_client).run_all()
    assert [t["task_name"] for t in done][0] == "a"
    assert [t["task_name"] for t in done][-1] == "d"
    assert refresh(execution).status == FlowExecutionStatus.COMPLETED
