"""Benchmark: ``POST /api/task-executions`` (worker reports, seed 002) beside the floor's insert.

    .venv/bin/python bench/task_executions_create.py [--seconds 20] [--connections 16]
        [--mode gunicorn|uvicorn|both] [--workers N] [--flow-executions 1]

Scenarios, each measured against the floor's ``POST /rows`` (one plain-Serializer body, one
ORM insert) in the same run:

- create: a terminal report (``completed`` + output) of a new ``(task_name, idx)`` key per
  request, on one running flow execution whose flow defines the ten task names: insert,
  output sync, engine reaction, outbox. Every report holds its flow execution's row lock
  for its whole transaction, so reports of one flow execution run one at a time: the same
  scenario spread over 16 flow executions (``--flow-executions 1,16``) shows the throughput
  of many flows reporting at once.
- re-report: the same finished report again and again (the idempotent path: answered with
  the stored record, nothing written).

DESIGN §11 target: create ≥ 70 % of the floor's requests/s and p99 < 50 ms at 16 clients.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

TASKS = [f"t{i}" for i in range(10)]


def create_lua(key: str, executions: list[str]) -> str:
    ids = ", ".join(harness.lua_string(e) for e in executions)
    return (
        f"local FES = {{{ids}}}\n"
        + """
function body()
  local i = next_n()
  return string.format('{"flow_execution_id": "%s", "task_name": "t%d", '
    .. '"task_execution_idx": %d, "status": "completed", "output": {"n": %d}, '
    .. '"worker_id": "bench"}', FES[(i % #FES) + 1], i % 10, i, i)
end
"""
        + harness.lua_request("POST", "/api/task-executions", body_expr="body()", key=key)
    )


def rereport_lua(key: str, execution: str) -> str:
    body = (
        f'{{"flow_execution_id": "{execution}", "task_name": "t0", "task_execution_idx": 1, '
        '"status": "completed", "output": {"n": 1}, "worker_id": "bench"}'
    )
    return harness.lua_request(
        "POST", "/api/task-executions", body_expr=harness.lua_string(body), key=key
    )


def main() -> None:
    parser = harness.http_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--flow-executions",
        default="1,16",
        help="comma-separated: create scenarios over this many flow executions (default 1,16)",
    )
    args = parser.parse_args()
    harness.check_wrk()
    harness.setup_django()
    from executions.engine.reports import report_task_execution
    from flowplatform.authentication import principal_for_key
    from flowplatform.models import ApiKey

    organization, key = harness.new_organization("bench-te-create")
    group = uuid.uuid4()
    try:
        flow = harness.make_flow(organization, harness.noop_tasks(TASKS))
        counts = [max(1, min(int(c), 100)) for c in args.flow_executions.split(",")]
        executions = [harness.start_execution(flow) for _ in range(max(counts))]
        principal = principal_for_key(ApiKey.objects.get(organization=organization))
        report_task_execution(  # the key the re-report scenario repeats
            principal=principal,
            data={
                "flow_execution_id": executions[0].id,
                "task_name": "t0",
                "task_execution_idx": 1,
                "status": "completed",
                "output": {"n": 1},
                "worker_id": "bench",
            },
        )
        ids = [str(e.id) for e in executions]
        for mode, workers in harness.modes(args):
            with harness.serving(mode, workers, redis=not args.no_redis) as servers:
                harness.print_header(
                    "POST /api/task-executions",
                    servers,
                    seconds=args.seconds,
                    connections=args.connections,
                )
                floor = harness.floor_insert_target(group)
                results = [
                    harness.compare(
                        servers,
                        name="task_executions.create" + ("" if count == 1 else f".fe{count}"),
                        flowplatform=harness.flowplatform_side(
                            f"POST /api/task-executions create ({count} flow exec.)",
                            create_lua(key, ids[:count]),
                        ),
                        floor=floor,
                        seconds=args.seconds,
                        connections=args.connections,
                        rounds=args.rounds,
                    )
                    for count in counts
                ]
                results += [
                    harness.compare(
                        servers,
                        name="task_executions.rereport",
                        flowplatform=harness.flowplatform_side(
                            "POST /api/task-executions re-report (same key)",
                            rereport_lua(key, ids[0]),
                        ),
                        floor=floor,
                        seconds=args.seconds,
                        connections=args.connections,
                        rounds=args.rounds,
                    ),
                ]
                harness.report(
                    results,
                    json_path=args.json,
                    mode=mode,
                    workers=workers,
                    connections=args.connections,
                )
        print("target (DESIGN §11): create >= 70% of the floor's insert, p99 < 50 ms at 16 clients")
    finally:
        harness.delete_organization(organization)
        harness.delete_floor_rows([group])


if __name__ == "__main__":
    main()
