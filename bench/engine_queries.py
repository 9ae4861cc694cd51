"""Queries and time per engine operation (not a load test; one process, one client).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_engine .venv/bin/python \
        bench/engine_queries.py [--sql LABEL]

Drives a 200-task ``noop`` DAG (layers of 20, each task depending on two above) through the
worker protocol with Django's test client, request by request, as one worker would: claim
(``wait_seconds`` 0), then per task the requests ``executions.worker.tasks`` sends for a
``noop`` (the terminal report only: an empty summary needs no task-output post, and no
task-status post repeats the report's status). Then edits the root of a
1,000-task DAG (dry run, mark stale, mark + re-queue). Each row: statements counted with
``CaptureQueriesContext`` (median and max over the calls; ``BEGIN``/``COMMIT`` are not
counted, savepoints are) and the median time per call in this process. ``--sql LABEL``
prints the statements of the last call of that operation.

The database is migrated; a fresh organization is created per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_engine")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "true")  # the test client's host, "testserver"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.engine_throughput import layered, make_flow, new_execution  # noqa: E402
from executions.engine import leases, lifecycle  # noqa: E402
from executions.models import TaskExecution  # noqa: E402
from flowplatform.services import create_api_key, create_organization  # noqa: E402

counts: dict[str, list[int]] = defaultdict(list)
times: dict[str, list[float]] = defaultdict(list)
last_sql: dict[str, list[str]] = {}


def measure(label: str, call: Any) -> Any:
    connection.queries_log.clear()  # a full log would make the count 0
    began = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        result = call()
    times[label].append((time.perf_counter() - began) * 1000)
    counts[label].append(len(queries.captured_queries))
    last_sql[label] = [q["sql"] for q in queries.captured_queries]
    return result


def check(response: Any, *codes: int) -> Any:
    if response.status_code not in codes:
        raise SystemExit(f"unexpected {response.status_code}: {response.content[:500]!r}")
    return response.json()


def protocol_versions() -> bool:
    """Whether the worker still posts ``running`` to the task-status history."""
    source = (ROOT / "executions" / "worker" / "tasks.py").read_text()
    return '_post_status(task, "running")' in source


def drive_dag(client: APIClient, flow: Any) -> None:
    execution = new_execution(flow)
    lifecycle.start_flow_execution(execution=execution, actor="bench")
    fe = str(execution.id)
    posts_running = protocol_versions()
    while True:
        body = measure(
            "claim (limit 8)",
            lambda: check(
                client.post(
                    "/api/task-executions/claim",
                    {"worker_id": "w", "executors": ["noop"], "limit": 8, "wait_seconds": 0},
                    format="json",
                ),
                200,
            ),
        )
        claimed = body["task_executions"]
        if not claimed:
            break
        for item in claimed:
            name = item["task_name"]
            if posts_running:
                measure(
                    "task-status running (1 item)", lambda n=name: _status(client, fe, n, "running")
                )
            measure(
                "report completed",
                lambda i=item: check(
                    client.post(
                        "/api/task-executions",
                        {
                            "flow_execution_id": fe,
                            "task_name": i["task_name"],
                            "task_execution_idx": i["task_execution_idx"],
                            "status": "completed",
                            "output": {},
                            "error": None,
                            "worker_id": "w",
                        },
                        format="json",
                    ),
                    200,
                    201,
                ),
            )
    execution.refresh_from_db()
    print(f"200-task DAG: {execution.status}")


def _status(client: APIClient, fe: str, name: str, status: str) -> Any:
    return check(
        client.post(
            f"/api/flow-executions/{fe}/task-status",
            {"statuses": [{"task_name": name, "status": status}]},
            format="json",
        ),
        200,
    )


def complete_in_process(organization: Any, principal: Any, execution: Any) -> None:
    from executions.engine import reports as task_executions

    while True:
        claimed = leases.claim_task_executions(
            organization=organization, worker_id="bench", executors=["noop"], limit=50
        )
        if not claimed:
            return
        for item in claimed:
            task_executions.report_task_execution(
                principal=principal,
                data={
                    "flow_execution_id": execution.id,
                    "task_name": item["task_name"],
                    "task_execution_idx": item["task_execution_idx"],
                    "status": "completed",
                    "output": {"n": item["task_name"]},
                    "worker_id": "bench",
                },
            )


def staleness(organization: Any, key_row: Any) -> None:
    from executions.services import task_execution_edits
    from flowplatform.authentication import principal_for_key

    flow = make_flow(organization, layered(1000, 37))
    principal = principal_for_key(key_row)
    for mode in ("edit root: dry run", "edit root: mark stale", "edit root: mark + re-queue"):
        execution = new_execution(flow)
        lifecycle.start_flow_execution(execution=execution, actor="bench")
        complete_in_process(organization, principal, execution)
        root = TaskExecution.objects.get(flow_execution=execution, task_name="root")
        measure(
            mode,
            lambda r=root, m=mode: task_execution_edits.edit_task_execution(
                principal=principal,
                data={"id": r.id, "output": {"edited": str(uuid.uuid4())}},
                execute_flow=m.endswith("re-queue"),
                dry_run=m.endswith("dry run"),
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sql", help="print the statements of this operation's last call")
    parser.add_argument("--skip-staleness", action="store_true")
    args = parser.parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    organization = create_organization(
        name=f"bench-q-{uuid.uuid4().hex[:8]}", max_concurrent_executions=10_000
    )
    key_row, key = create_api_key(organization=organization, kind="service")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    flow = make_flow(organization, layered(200, 20))
    drive_dag(client, flow)  # warms the caches (definition, key) and the plans
    counts.clear()
    times.clear()
    drive_dag(client, flow)
    if not args.skip_staleness:
        staleness(organization, key_row)
    print(f"{'operation':34} {'calls':>5} {'queries med':>11} {'max':>4} {'ms med':>8}")
    for label, values in counts.items():
        print(
            f"{label:34} {len(values):5} {statistics.median(values):11.0f} {max(values):4}"
            f" {statistics.median(times[label]):8.1f}"
        )
    if args.sql:
        for sql in last_sql.get(args.sql, []):
            print("  ", sql[:300])


if __name__ == "__main__":
    main()
