"""Staleness: an edited output outdates everything downstream of it.

Editing a task's output marks the latest execution (and the output) of every task in its
transitive downstream closure ``stale`` with a ``stale_reason`` naming the edit, and a finished
flow execution ``stale``. ``rerun_downstream`` (``PUT …?execute_flow=true``) queues exactly
that closure again at the next ``task_execution_idx``, in dependency order: a stale task is
queued once all its dependencies have completed again, with inputs resolved anew.
"""

from __future__ import annotations

from typing import Any

from executions.engine import transitions
from executions.engine.scheduling import maybe_finish, schedule_ready, sync_outputs
from executions.engine.state import Run
from executions.enums import FLOW_EXECUTION_TERMINAL, FlowExecutionStatus, TaskExecutionStatus
from executions.models import TaskExecution
from flowplatform.representation import iso

FE = FlowExecutionStatus
TE = TaskExecutionStatus


def stale_targets(run: Run, task_name: str) -> list[str]:
    """Tasks an edit of ``task_name`` makes stale: its downstream closure that has run (has
    an execution), in dependency order."""
    dag = run.definition.dag
    closure = dag.downstream_closure([task_name])
    latest = run.load(closure)
    return [name for name in dag.in_order(closure) if name in latest]


def stale_reason(source: TaskExecution, *, actor: str) -> dict[str, Any]:
    return {
        "task_name": source.task_name,
        "task_execution_id": str(source.id),
        "edited_at": iso(source.updated_at),
        "modified_by": actor,
    }


def mark_downstream_stale(run: Run, source: TaskExecution, *, actor: str) -> list[str]:
    """Mark what ``source``'s edit outdates; returns the task names marked, in dependency
    order. The caller holds the flow execution's row lock.

    The latest execution of each task in the closure is flagged stale (one UPDATE) and its
    output follows (``sync_outputs``: one UPDATE for all of them); each is published
    (``task_execution.stale``, ``task_output.updated``) in this transaction. A finished
    flow execution becomes ``stale``."""
    names = stale_targets(run, source.task_name)
    if not names:
        return []
    tasks = [run.latest[name] for name in names]
    transitions.mark_tasks_stale(
        tasks, flow_id=run.flow_id, reason=stale_reason(source, actor=actor)
    )
    sync_outputs(run, tasks)
    if run.execution.status in FLOW_EXECUTION_TERMINAL:
        transitions.change_flow_status(run.execution, FE.STALE)
    return names


def rerun_downstream(run: Run, source: TaskExecution, *, actor: str) -> list[TaskExecution]:
    """Queue ``source``'s downstream closure again (what is ready now; the rest as its
    dependencies complete). Executions of it still waiting to be claimed or reviewed are
    superseded (cancelled) so that they are redone with the new input."""
    dag = run.definition.dag
    closure = dag.downstream_closure([source.task_name])
    if not closure:
        return []
    latest = run.load(closure)
    waiting = [
        latest[name]
        for name in closure
        if name in latest and latest[name].status in (TE.QUEUED, TE.AWAITING_INPUT)
    ]
    superseded = transitions.cancel_tasks(waiting, flow_id=run.flow_id, actor=actor)
    sync_outputs(run, superseded)
    if run.execution.status != FE.RUNNING:
        transitions.change_flow_status(run.execution, FE.RUNNING, actor=actor)
    run.set_pending(dag.in_order({*run.pending, *closure}))
    queued = schedule_ready(run)
    if not queued:
        maybe_finish(run)
    return queued
