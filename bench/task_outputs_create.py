"""Benchmark: ``POST /api/task-outputs`` (seed 001) beside the floor's insert.

    .venv/bin/python bench/task_outputs_create.py [--seconds 20] [--connections 16]
        [--mode gunicorn|uvicorn|both] [--workers N]

Scenarios, each against the floor's ``POST /rows`` (one plain-Serializer body, one insert):

- create: a new ``(flow_execution, task_name)`` output per request (201), spread over 50
  flow executions of a flow that defines 1,000 task names (50,000 distinct keys; past them
  requests become updates);
- update: a worker setting the summary of existing outputs again and again (200).

Every request writes one ``task_output.*`` outbox event. No DESIGN §11 target of its own;
it is the other half of a worker's report (``POST /task-executions`` is the first).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

TASKS = 1000
EXECUTIONS = 50


def outputs_lua(key: str, executions: list[str], *, update: bool) -> str:
    ids = ", ".join(harness.lua_string(e) for e in executions)
    # create: consecutive numbers walk every (execution, task) pair once; update: 10 tasks
    # of each execution, over and over (their outputs exist after the first round).
    task = "i % 10" if update else "math.floor(i / #FES) % TASKS"
    return (
        f"local FES = {{{ids}}}\nTASKS = {TASKS}\n"
        + f"""
function body()
  local i = next_n()
  local task = {task}
  return string.format('{{"flow_execution_id": "%s", "task_name": "o%d", '
    .. '"summary": {{"n": %d, "ok": true}}, "tags": ["bench"]}}', FES[(i % #FES) + 1], task, i)
end
"""
        + harness.lua_request("POST", "/api/task-outputs", body_expr="body()", key=key)
    )


def main() -> None:
    parser = harness.http_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    harness.check_wrk()
    harness.setup_django()
    from executions.models import FlowExecution

    organization, key = harness.new_organization("bench-outputs")
    group = uuid.uuid4()
    try:
        flow = harness.make_flow(organization, harness.noop_tasks([f"o{i}" for i in range(TASKS)]))
        # Not started: no output exists until a request creates it.
        executions = FlowExecution.objects.bulk_create(
            FlowExecution(
                organization=organization, flow=flow, flow_version=1, status="running", input={}
            )
            for _ in range(EXECUTIONS)
        )
        ids = [str(e.id) for e in executions]
        for mode, workers in harness.modes(args):
            with harness.serving(mode, workers, redis=not args.no_redis) as servers:
                harness.print_header(
                    "POST /api/task-outputs",
                    servers,
                    seconds=args.seconds,
                    connections=args.connections,
                )
                floor = harness.floor_insert_target(group)
                results = [
                    harness.compare(
                        servers,
                        name="task_outputs.create",
                        flowplatform=harness.flowplatform_side(
                            "POST /api/task-outputs create", outputs_lua(key, ids, update=False)
                        ),
                        floor=floor,
                        seconds=args.seconds,
                        connections=args.connections,
                        rounds=args.rounds,
                    ),
                    harness.compare(
                        servers,
                        name="task_outputs.update",
                        flowplatform=harness.flowplatform_side(
                            "POST /api/task-outputs update (summary)",
                            outputs_lua(key, ids, update=True),
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
    finally:
        harness.delete_organization(organization)
        harness.delete_floor_rows([group])


if __name__ == "__main__":
    main()
