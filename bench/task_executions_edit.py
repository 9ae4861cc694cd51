"""Benchmark: ``PUT /api/task-executions`` (a person's edit, seed 003) with staleness, beside
the floor's insert.

    .venv/bin/python bench/task_executions_edit.py [--seconds 20] [--connections 16]
        [--mode gunicorn|uvicorn|both] [--workers N] [--flow-executions 4]

Each request edits the output of the root task of a completed 50-task DAG (one root, layers
of 10, each task depending on two of the layer above), so every edit marks the other 49
executions stale (one UPDATE), recomputes the edited task's output and writes ~51 outbox
events. Requests rotate over ``--flow-executions`` completed executions of that DAG (each
edit holds its flow execution's row lock). No DESIGN §11 target; the floor's one-row insert
is the yardstick.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402

DAG_TASKS = 50
DAG_WIDTH = 10


def complete_dag(execution: Any, organization: Any) -> str:
    """Complete every task of ``execution``; the id of its root's execution."""
    from executions.models import TaskExecution

    harness.complete_in_process(organization)
    return str(
        TaskExecution.objects.filter(flow_execution=execution, task_name="root")
        .order_by("-task_execution_idx")
        .values_list("id", flat=True)
        .first()
    )


def make_dag_flow(organization: Any) -> Any:
    shape = harness.layered(DAG_TASKS, DAG_WIDTH)
    tasks = [
        {"name": name, "task_executor_name": "noop", "depends_on": deps}
        for name, deps in shape.items()
    ]
    return harness.make_flow(organization, tasks, name=f"dag{DAG_TASKS}")


def edit_lua(key: str, roots: list[str]) -> str:
    ids = ", ".join(harness.lua_string(r) for r in roots)
    return (
        f"local ROOTS = {{{ids}}}\n"
        + """
function body()
  local i = next_n()
  return string.format('{"id": "%s", "output": {"edited": %d}}', ROOTS[(i % #ROOTS) + 1], i)
end
"""
        + harness.lua_request("PUT", "/api/task-executions", body_expr="body()", key=key)
    )


def main() -> None:
    parser = harness.http_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--flow-executions", type=int, default=4)
    args = parser.parse_args()
    harness.check_wrk()
    harness.setup_django()
    organization, key = harness.new_organization("bench-te-edit")
    group = uuid.uuid4()
    try:
        flow = make_dag_flow(organization)
        count = max(1, min(args.flow_executions, 64))
        roots = []
        for _ in range(count):
            execution = harness.start_execution(flow)
            roots.append(complete_dag(execution, organization))
        for mode, workers in harness.modes(args):
            with harness.serving(mode, workers, redis=not args.no_redis) as servers:
                harness.print_header(
                    "PUT /api/task-executions",
                    servers,
                    seconds=args.seconds,
                    connections=args.connections,
                )
                result = harness.compare(
                    servers,
                    name="task_executions.edit",
                    flowplatform=harness.flowplatform_side(
                        f"PUT /api/task-executions (root of {DAG_TASKS}-task DAG, 49 stale)",
                        edit_lua(key, roots),
                    ),
                    floor=harness.floor_insert_target(group),
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
    finally:
        harness.delete_organization(organization)
        harness.delete_floor_rows([group])


if __name__ == "__main__":
    main()
