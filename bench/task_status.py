"""Benchmark: ``POST /api/flow-executions/{id}/task-status`` (seed 004) with 10 and 100 items,
beside the floor's batch insert.

    .venv/bin/python bench/task_status.py [--seconds 20] [--connections 16]
        [--latency-connections 1] [--mode gunicorn|uvicorn|both] [--workers N]

Each request appends N ``{task_name, status}`` items (one multi-row INSERT of the history,
N ``task_status.added`` outbox events, the task outputs' statuses recomputed) to one of
``--flow-executions`` running flow executions (batches of one flow execution run one after
another; one that sets the outputs of several tasks also holds the flow execution's row
lock). The floor's ``POST /rows/batch`` validates the same N items with a DRF
``Serializer(many=True)`` and inserts them with one ``bulk_create``.

Two passes per size: throughput at ``--connections`` and latency at
``--latency-connections`` (default 1: the time one batch takes when the server is not
queueing requests). DESIGN §11 target: 100 items p50 < 50 ms (the seed quotes ~50 ms for 10).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

TASKS = [f"t{i}" for i in range(10)]


def status_lua(key: str, executions: list[str], size: int) -> str:
    ids = ", ".join(harness.lua_string(e) for e in executions)
    items = json.dumps(
        {"statuses": [{"task_name": TASKS[i % 10], "status": "running"} for i in range(size)]}
    )
    return f"""
local FES = {{{ids}}}
local BODY = {harness.lua_string(items)}
local headers = {{["Content-Type"] = "application/json",
                 ["Authorization"] = {harness.lua_string("Bearer " + key)}}}
request = function()
  local i = next_n()
  local path = "/api/flow-executions/" .. FES[(i % #FES) + 1] .. "/task-status"
  return wrk.format("POST", path, headers, BODY)
end
"""


def floor_lua(group: uuid.UUID, size: int) -> str:
    body = json.dumps(
        {
            "group": str(group),
            "rows": [{"name": TASKS[i % 10], "status": "running"} for i in range(size)],
        }
    )
    return harness.lua_request("POST", "/rows/batch", body_expr=harness.lua_string(body))


def main() -> None:
    parser = harness.http_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--latency-connections", type=int, default=1)
    parser.add_argument("--flow-executions", type=int, default=4)
    args = parser.parse_args()
    harness.check_wrk()
    harness.setup_django()
    organization, key = harness.new_organization("bench-task-status")
    group = uuid.uuid4()
    try:
        flow = harness.make_flow(organization, harness.noop_tasks(TASKS))
        count = max(1, min(args.flow_executions, 64))
        ids = [str(harness.start_execution(flow).id) for _ in range(count)]
        for mode, workers in harness.modes(args):
            with harness.serving(mode, workers, redis=not args.no_redis) as servers:
                results = []
                for connections in dict.fromkeys([args.connections, args.latency_connections]):
                    harness.print_header(
                        "POST …/task-status", servers, seconds=args.seconds, connections=connections
                    )
                    batch = []
                    for size in (10, 100):
                        batch.append(
                            harness.compare(
                                servers,
                                name=f"task_status.{size}.c{connections}",
                                flowplatform=harness.flowplatform_side(
                                    f"POST …/task-status ({size} items)",
                                    status_lua(key, ids, size),
                                ),
                                floor=harness.floor_side(
                                    f"floor POST /rows/batch ({size} rows)",
                                    floor_lua(group, size),
                                ),
                                seconds=args.seconds,
                                connections=connections,
                                rounds=args.rounds,
                            )
                        )
                    harness.report(
                        batch,
                        json_path=args.json,
                        mode=mode,
                        workers=workers,
                        connections=connections,
                    )
                    results += batch
        print("target (DESIGN §11): 100 items p50 < 50 ms")
    finally:
        harness.delete_organization(organization)
        harness.delete_floor_rows([group])


if __name__ == "__main__":
    main()
