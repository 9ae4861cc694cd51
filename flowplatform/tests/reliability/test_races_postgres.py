"""Row 7 — idempotency and races on PostgreSQL, over real HTTP against a uvicorn server with
four worker processes (so requests really run in parallel transactions).

- 50 concurrent identical ``POST /api/task-executions`` → one row (one 201, 49 × 200);
- 50 claimers over 500 queued tasks → every task claimed once, 0 double claims (the
  5,000-task version is ``bench/reliability_claims.py``);
- 20 concurrent ``PUT /api/task-executions`` carrying the same ``updated_at`` → exactly one
  wins (200), the others get 409, and the stored output is the winner's.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from executions.models import TaskExecution
from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.races import claim_race, client, queue_tasks, run_together
from realtime.tests.live import LiveServer, database_url, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(tmp_path):  # noqa: ANN001, ANN201
    env = server_env(database_url=database_url(connection.settings_dict), redis_url=None)
    # Long leases: claimed tasks are held, never heartbeated, while the race runs.
    env.update(LOG_LEVEL="WARNING", CONN_MAX_AGE="0", FLOWPLATFORM_LEASE_SECONDS="3600")
    with LiveServer(env, tmp_path / "server.log", workers=4, log_level="warning") as live:
        yield live


def test_fifty_identical_concurrent_reports_make_one_row(server, tenant):
    (execution,) = queue_tasks(tenant.organization, executions=1, width=3)
    body = {
        "flow_execution_id": str(execution.id),
        "task_name": "t1",
        "task_execution_idx": 5,
        "status": "completed",
        "output": {"same": True},
    }

    def post(_: int):  # noqa: ANN202
        with client(server.http_url, tenant.service_key) as http:
            return http.post("/api/task-executions", json=body)

    responses = run_together(50, post)
    codes = Counter(getattr(r, "status_code", repr(r)) for r in responses)
    rows = TaskExecution.objects.filter(
        flow_execution=execution, task_name="t1", task_execution_idx=5
    ).count()
    ids = {r.json()["id"] for r in responses if hasattr(r, "json")}
    figure(7, "50 concurrent identical POST /task-executions", statuses=dict(codes), rows=rows)
    assert codes == {201: 1, 200: 49}, (codes, server.log()[-3000:])
    assert rows == 1 and len(ids) == 1


def test_fifty_claimers_never_claim_a_task_twice(server, tenant):
    executions = queue_tasks(tenant.organization, executions=5, width=100)
    queued = TaskExecution.objects.filter(flow_execution__in=executions, status="queued").count()
    assert queued == 500
    race = claim_race(server.http_url, tenant.service_key, claimers=50)
    running = TaskExecution.objects.filter(flow_execution__in=executions, status="running")
    owners = Counter(running.values_list("lease_owner", flat=True))
    figure(
        7,
        "50 claimers over 500 queued tasks",
        claimed=race.claimed,
        unique=race.unique,
        double_claims=race.double_claims,
        claim_requests=race.requests,
        seconds=round(race.seconds, 2),
        claimers_that_got_work=len(owners),
    )
    assert race.errors == []
    assert race.double_claims == 0
    assert race.unique == queued == running.count()
    assert not TaskExecution.objects.filter(flow_execution__in=executions, status="queued").exists()


def test_concurrent_edits_with_the_same_updated_at_have_exactly_one_winner(server, tenant):
    (execution,) = queue_tasks(tenant.organization, executions=1, width=2)
    task = TaskExecution.objects.get(flow_execution=execution, task_name="t0")
    with client(server.http_url, tenant.service_key) as http:
        done = http.post(
            "/api/task-executions",
            json={
                "flow_execution_id": str(execution.id),
                "task_name": "t0",
                "task_execution_idx": 0,
                "status": "completed",
                "output": "original",
            },
        )
    assert done.status_code == 200, done.text
    read = done.json()["updated_at"]

    def edit(i: int):  # noqa: ANN202
        with client(server.http_url, tenant.user_key) as http:
            return http.put(
                "/api/task-executions",
                json={"id": str(task.id), "output": f"edit-{i}", "updated_at": read},
            )

    responses = run_together(20, edit)
    codes = Counter(getattr(r, "status_code", repr(r)) for r in responses)
    winners = [r.json()["output"] for r in responses if getattr(r, "status_code", 0) == 200]
    task.refresh_from_db()
    figure(
        7,
        "20 concurrent PUTs with the same updated_at",
        statuses=dict(codes),
        winners=len(winners),
        stored_is_winner=bool(winners) and task.output == winners[0],
    )
    assert codes == {200: 1, 409: 19}, (codes, server.log()[-3000:])
    assert task.output == winners[0]
