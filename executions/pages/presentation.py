"""What the pages draw: a flow's validated definition, its layout and each node's state."""

from __future__ import annotations

from typing import Any

from executions import dsl
from executions.enums import StaleStatus, TaskExecutionStatus
from executions.pages.layout import Layout, layered_layout

# A task queued or running again is no longer "stale": its re-run is on its way.
_ON_ITS_WAY = frozenset({TaskExecutionStatus.QUEUED, TaskExecutionStatus.RUNNING})


def graph_of(definition: Any) -> tuple[dsl.FlowDefinition | None, Layout | None, list[str]]:
    """The validated definition and its drawing; problems instead when it does not validate."""
    try:
        flow_definition = dsl.validate_definition(definition)
    except dsl.DefinitionError as exc:
        return None, None, [f"{problem.loc}: {problem.msg}" for problem in exc.problems]
    return flow_definition, layered_layout(flow_definition.dag), []


def definition_facts(flow_definition: dsl.FlowDefinition | None) -> dict[str, Any]:
    """What the execution page's script needs to know about the tasks, in run order."""
    if flow_definition is None:
        return {"task_names": [], "downstream": {}, "executors": {}}
    dag = flow_definition.dag
    return {
        "task_names": list(flow_definition.order),
        "downstream": {name: dag.in_order(dag.downstream_closure([name])) for name in dag},
        "executors": {task.name: task.task_executor_name for task in flow_definition.tasks},
    }


def node_rows(
    flow_definition: dsl.FlowDefinition,
    layout: Layout,
    tasks: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Template rows for the DAG; with ``tasks`` (the execution page) each node's current
    state is drawn server-side too, so the page is right before its script runs."""
    rows = []
    for box in layout.nodes:
        current = (tasks or {}).get(box.name)
        status = display_status(current)
        rows.append(
            {
                "box": box,
                "task": flow_definition.task(box.name),
                "current": current,
                "status": status,
                "status_label": status.replace("_", " "),
            }
        )
    return rows


def display_status(task_execution: dict[str, Any] | None) -> str:
    """What a node shows: ``pending`` before the task's first run, ``stale`` for a finished
    run made outdated by an upstream edit (the same rule as the page's script)."""
    if task_execution is None:
        return "pending"
    status = task_execution["status"]
    if task_execution["stale_status"] == StaleStatus.STALE and status not in _ON_ITS_WAY:
        return TaskExecutionStatus.STALE.value
    return status
