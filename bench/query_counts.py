"""Queries per request for every benchmarked endpoint (not a load test: one request each).

    .venv/bin/python bench/query_counts.py [--sql]

Runs each request in this process through Django's test client against the database in
``DATABASE_URL`` (default: the local PostgreSQL), on a fresh organization that is deleted at
the end, and counts the SQL statements with ``CaptureQueriesContext``. Every endpoint is
called once before it is counted, so per-process caches (the parsed flow definition, the
API key's throttled ``last_used_at``) are warm, as they are under load. ``--sql`` prints the
statements too.

Not counted by ``CaptureQueriesContext``: the transaction's ``BEGIN``/``COMMIT`` (and
``SAVEPOINT``s, which it does count) and, with row-level security on, the one
``set_config`` round trip per transaction that ``flowplatform.tenancy`` runs on the driver's
connection.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sql", action="store_true", help="print each statement")
    args = parser.parse_args()
    harness.setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    organization, key = harness.new_organization("bench-queries")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    rows: list[tuple[str, int, int]] = []

    def count(
        label: str,
        call: Callable[[int], Any],
        *,
        expect: int = 200,
        prepare: Callable[[int], Any] | None = None,
    ) -> None:
        """Call twice (the first warms caches); count the second call's statements."""
        for i in (0, 1):
            if prepare is not None:
                prepare(i)
            with CaptureQueriesContext(connection) as queries:
                response = call(i)
                if hasattr(response, "streaming_content"):
                    b"".join(response.streaming_content)
            assert response.status_code == expect, (label, response.status_code, response.content)
        rows.append((label, len(queries), response.status_code))
        if args.sql:
            print(f"\n-- {label}: {len(queries)} queries")
            for query in queries.captured_queries:
                print("   ", query["sql"][:300])

    try:
        flow = harness.make_flow(organization, harness.noop_tasks([f"t{i}" for i in range(10)]))
        execution = harness.start_execution(flow)
        fe = str(execution.id)
        counter = iter(range(10, 10**6))

        def create(_: int) -> Any:
            i = next(counter)
            return client.post(
                "/api/task-executions",
                {
                    "flow_execution_id": fe,
                    "task_name": f"t{i % 10}",
                    "task_execution_idx": i,
                    "status": "completed",
                    "output": {"n": i},
                    "worker_id": "bench",
                },
                format="json",
            )

        count("POST /api/task-executions (create, completed)", create, expect=201)
        same = {
            "flow_execution_id": fe,
            "task_name": "t0",
            "task_execution_idx": 10,
            "status": "completed",
            "output": {"n": 10},
            "worker_id": "bench",
        }
        count(
            "POST /api/task-executions (re-report, same key)",
            lambda _: client.post("/api/task-executions", same, format="json"),
        )

        # The usual worker path: claim, then report the claimed execution completed.
        chain = harness.make_flow(
            organization,
            [
                {"name": f"c{i}", "task_executor_name": "bench_chain", "depends_on": deps}
                for i, deps in enumerate([[], ["c0"], ["c1"], ["c2"]])
            ],
            name="chain",
        )
        harness.start_execution(chain)

        claimed: dict[int, dict] = {}

        def claim_one(i: int) -> None:
            answer = client.post(
                "/api/task-executions/claim",
                {"worker_id": "w", "executors": ["bench_chain"], "limit": 1, "wait_seconds": 0},
                format="json",
            ).json()["task_executions"]
            claimed[i] = answer[0]

        def complete_claimed(i: int) -> Any:
            task = claimed[i]
            return client.post(
                "/api/task-executions",
                {
                    "flow_execution_id": task["flow_execution_id"],
                    "task_name": task["task_name"],
                    "task_execution_idx": task["task_execution_idx"],
                    "status": "completed",
                    "output": {"ok": True},
                    "worker_id": "w",
                },
                format="json",
            )

        count(
            "POST /api/task-executions (claimed -> completed, queues next)",
            complete_claimed,
            prepare=claim_one,
        )
        count(
            "POST /api/task-executions/claim (nothing queued, wait 0)",
            lambda _: client.post(
                "/api/task-executions/claim",
                {"worker_id": "w", "executors": ["nothing"], "limit": 1, "wait_seconds": 0},
                format="json",
            ),
        )

        from bench.task_executions_edit import complete_dag, make_dag_flow

        dag = make_dag_flow(organization)

        dag_runs = [harness.start_execution(dag) for _ in range(2)]
        roots = [complete_dag(run, organization) for run in dag_runs]

        def edit(i: int) -> Any:
            return client.put(
                "/api/task-executions",
                {"id": roots[i], "output": {"edited": next(counter)}},
                format="json",
            )

        count("PUT /api/task-executions (edit root of 50-task DAG)", edit)
        for size in (10, 100):
            statuses = [{"task_name": f"t{i % 10}", "status": "running"} for i in range(size)]
            count(
                f"POST …/task-status ({size} items)",
                lambda _, s=statuses: client.post(
                    f"/api/flow-executions/{fe}/task-status", {"statuses": s}, format="json"
                ),
            )

        def output(i: int, *, update: bool = False) -> Any:
            name = "t0" if update else f"t{1 + i}"
            return client.post(
                "/api/task-outputs",
                {
                    "flow_execution_id": fe,
                    "task_name": name,
                    "summary": {"n": next(counter)},
                },
                format="json",
            )

        outputs_fe = harness.start_execution(flow)
        fe_out = str(outputs_fe.id)

        def output_create(i: int) -> Any:
            return client.post(
                "/api/task-outputs",
                {"flow_execution_id": fe_out, "task_name": f"t{i}", "summary": {"n": i}},
                format="json",
            )

        from outputs.models import TaskOutput

        TaskOutput.objects.filter(flow_execution_id=fe_out).delete()
        count("POST /api/task-outputs (create)", output_create, expect=201)
        count("POST /api/task-outputs (update)", lambda i: output(i, update=True))

        from bench.task_executions_list import fill_task_executions

        list_fe = harness.start_execution(flow)
        fill_task_executions(list_fe, 100)
        count(
            "GET /api/task-executions?flow_execution_id= (100 rows)",
            lambda _: client.get(f"/api/task-executions?flow_execution_id={list_fe.id}"),
        )
        count(
            "GET /api/task-outputs?limit=100",
            lambda _: client.get("/api/task-outputs?limit=100"),
        )
        count("GET /api/task-outputs (streamed, all)", lambda _: client.get("/api/task-outputs"))
    finally:
        harness.delete_organization(organization)

    print(f"\n{'endpoint':<64} {'queries':>7}")
    print("-" * 72)
    for label, queries, _ in rows:
        print(f"{label:<64} {queries:>7}")


if __name__ == "__main__":
    main()
