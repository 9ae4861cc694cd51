"""Row 9 (server half) — SIGKILL the ASGI server during a burst of worker reports, start it
again: every request that got a 2xx is in the database (figure: acknowledged N, lost 0).

Six reporter threads post task-status batches and ``completed`` reports without pause; the
server is killed with SIGKILL mid-burst (no graceful anything), a new one is started on
another port, and the reporters carry on against it. The database half (PostgreSQL stopped
with ``-m immediate`` during a burst) is ``bench/reliability_db_outage.py``: it stops the
shared PostgreSQL, so it is run by hand, not in CI.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from executions.tests.e2e.conftest import wait_until
from executions.tests.engine.factories import start
from flowplatform.tests.reliability.bursts import Burst, lost_acknowledged, run_burst
from flowplatform.tests.reliability.figures import figure

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TASKS = ["r0", "r1", "r2", "r3"]
# A human_review task never claimed nor completed here: the flow execution stays running.
DEFINITION = {
    "tasks": [
        *({"name": name, "task_executor_name": "noop"} for name in TASKS),
        {"name": "gate", "task_executor_name": "human_review"},
    ]
}


def test_acknowledged_reports_survive_a_sigkilled_server(e2e_server, tenant):
    execution = start(tenant.organization, DEFINITION)
    servers = [e2e_server()]
    burst = Burst()
    reporters = run_burst(
        burst,
        base_url=lambda: servers[-1].url,
        key=tenant.service_key,
        flow_execution_id=str(execution.id),
        task_names=TASKS,
    )
    try:
        wait_until(lambda: burst.outcomes["2xx"] >= 150, timeout=60, what="a burst under way")
        victim = servers[-1].process
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        acknowledged_before_kill = burst.outcomes["2xx"]
        time.sleep(0.5)  # requests fail meanwhile: nobody listens
        servers.append(e2e_server())
        wait_until(
            lambda: burst.outcomes["2xx"] >= acknowledged_before_kill + 100,
            timeout=60,
            what="the burst to go on against the new server",
        )
    finally:
        burst.stop.set()
        for reporter in reporters:
            reporter.join(10)
    lost = lost_acknowledged(burst)
    with servers[-1].client(tenant.service_key) as http:
        listed = http.get(
            "/api/task-executions",
            params={"flow_execution_id": str(execution.id), "limit": 1000},
        ).json()
    failures = {k: v for k, v in burst.outcomes.items() if k != "2xx"}
    figure(
        9,
        "SIGKILL of the ASGI server during a burst of reports",
        acknowledged_requests=burst.outcomes["2xx"],
        acknowledged_records=len(burst.acknowledged),
        acknowledged_before_kill=acknowledged_before_kill,
        failed_requests=failures,
        lost=len(lost),
    )
    assert lost == []
    assert failures, "the kill should have cost some requests (else it was not mid-burst)"
    assert listed, "the restarted server serves what was written"


@pytest.mark.django_db
def test_a_database_outage_is_503_with_retry_after_not_500(tenant, monkeypatch):
    """During ``bench/reliability_db_outage.py`` every failed request was a 500; workers retry
    only 408/429/502/503, so they dropped reports they could have retried. Now: 503."""
    from django.db import OperationalError

    def unavailable(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr("flowplatform.authentication.find_active_api_key", unavailable)
    response = tenant.client("service").get("/api/task-outputs")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "service_unavailable"
