"""Benchmark: ``GET /api/task-executions?flow_execution_id=`` returning 100 rows, beside the
floor's 100-row list.

    .venv/bin/python bench/task_executions_list.py [--seconds 20] [--connections 16]
        [--mode gunicorn|uvicorn|both] [--workers N]

flowplatform lists the 100 task executions of one flow execution (the default page size:
101 rows are read to know whether a next page exists), rendered from ``.values()`` rows by
plain functions and orjson. The floor lists 100 rows of its table with a DRF ``Serializer``
(``many=True``) and DRF's JSON renderer. Both rows carry a small JSON payload.

DESIGN §11 target: ≥ 100 % of the floor's requests/s.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

ROWS = 100


def fill_task_executions(execution: Any, total: int) -> None:
    """Exactly ``total`` completed task executions in ``execution``, with small outputs."""
    from django.utils import timezone

    from executions.models import TaskExecution

    TaskExecution.objects.filter(flow_execution=execution).delete()
    now = timezone.now()
    TaskExecution.objects.bulk_create(
        TaskExecution(
            organization_id=execution.organization_id,
            flow_execution=execution,
            task_name=f"t{i % 10}",
            task_execution_idx=i // 10,
            status="completed",
            input={"n": i},
            output={"n": i, "ok": True},
            task_executor_name="noop",
            created_at=now,
            updated_at=now,
            started_at=now,
            completed_at=now,
        )
        for i in range(total)
    )


def main() -> None:
    parser = harness.http_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    harness.check_wrk()
    harness.setup_django()
    organization, key = harness.new_organization("bench-te-list")
    group = uuid.uuid4()
    try:
        flow = harness.make_flow(organization, harness.noop_tasks([f"t{i}" for i in range(10)]))
        execution = harness.start_execution(flow)
        fill_task_executions(execution, ROWS)
        harness.floor_rows(group, ROWS)
        for mode, workers in harness.modes(args):
            with harness.serving(mode, workers, redis=not args.no_redis) as servers:
                harness.print_header(
                    "GET lists of 100 rows",
                    servers,
                    seconds=args.seconds,
                    connections=args.connections,
                )
                result = harness.compare(
                    servers,
                    name="task_executions.list",
                    flowplatform=harness.flowplatform_side(
                        f"GET /api/task-executions?flow_execution_id= ({ROWS} rows)",
                        harness.lua_request(
                            "GET",
                            f"/api/task-executions?flow_execution_id={execution.id}",
                            key=key,
                        ),
                    ),
                    floor=harness.floor_side(
                        f"floor GET /rows?group= ({ROWS} rows)",
                        harness.lua_request("GET", f"/rows?group={group}"),
                    ),
                    seconds=args.seconds,
                    connections=args.connections,
                    rounds=args.rounds,
                )
                harness.report(
                    [result],
                    json_path=args.json,
                    mode=mode,
                    workers=workers,
                    connections=args.connections,
                )
        print("target (DESIGN §11): >= 100% of the floor's 100-row list")
    finally:
        harness.delete_organization(organization)
        harness.delete_floor_rows([group])


if __name__ == "__main__":
    main()
