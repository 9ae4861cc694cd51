"""Staleness: an edited output outdates everything downstream of it.

Editing a task's output marks the latest execution (and the output) of every task in its
transitive downstream closure ``stale`` with a ``stale_reason`` naming the edit, and a finished
flow execution ``stale``. ``rerun_downstream`` (``PUT …?execute_flow=true``) queues exactly
that closure again at the next ``task_execution_idx``, in dependency order: a stale task is
queued once all its dependencies have completed again, with inputs resolved anew.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.utils import timezone

from executions.engine import rows, transitions
from executions.engine.events import emit_query
from executions.engine.outputs import UPDATED
from executions.engine.scheduling import maybe_finish, schedule_ready, sync_outputs
from executions.engine.state import Run
from executions.enums import (
    FLOW_EXECUTION_TERMINAL,
    FlowExecutionStatus,
    StaleStatus,
    TaskExecutionStatus,
)
from executions.models import TaskExecution
from executions.representations import TASK_EXECUTION
from flowplatform.representation import iso
from outputs.models import TaskOutput
from outputs.representations import TASK_OUTPUT

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

    The latest execution of each task of the closure is flagged stale (its status kept) and
    its output follows; each is published (``task_execution.stale``, then
    ``task_output.updated``, in dependency order) in this transaction. A finished flow
    execution becomes ``stale``."""
    dag = run.definition.dag
    closure = dag.in_order(dag.downstream_closure([source.task_name]))
    if not closure:
        return []
    reason = stale_reason(source, actor=actor)
    if connection.vendor == "postgresql":
        names = mark_stale_set_based(run, closure, reason=reason)
    else:
        names = mark_stale(run, closure, reason=reason)
    if names and run.execution.status in FLOW_EXECUTION_TERMINAL:
        transitions.change_flow_status(run.execution, FE.STALE)
    return names


def mark_stale(run: Run, closure: list[str], *, reason: dict[str, Any]) -> list[str]:
    """The rule: the latest execution of each of ``closure`` that has one is flagged stale
    (``transitions.mark_tasks_stale``) and its output follows it (``sync_outputs``)."""
    latest = run.load(closure)
    tasks = [latest[name] for name in closure if name in latest]
    transitions.mark_tasks_stale(tasks, flow_id=run.flow_id, reason=reason)
    sync_outputs(run, tasks)
    return [task.task_name for task in tasks]


# ``mark_stale`` in two statements whatever the closure's size, no row loaded into Python:
# the 1,000-task DAG's edit takes 100-120 ms this way, over 250 ms row by row (DESIGN §11:
# < 200 ms). Each statement changes what the rule changes and renders its events with the
# field tables' SQL form; ``test_mark_stale_rule`` holds the two to the same rows and events.
_EXECUTIONS_CTES = """
closure AS (
    SELECT name, ord FROM unnest(%(names)s::text[]) WITH ORDINALITY AS n(name, ord)
),
targets AS (
    SELECT DISTINCT ON (t.task_name) t.id, closure.ord
    FROM {table} AS t JOIN closure ON closure.name = t.task_name
    WHERE t.flow_execution_id = %(flow_execution_id)s AND t.status <> %(deleted)s
    ORDER BY t.task_name, t.task_execution_idx DESC
),
marked AS (
    UPDATE {table} AS t
    SET stale_status = %(stale)s, stale_reason = %(reason)s::jsonb, updated_at = %(now)s
    FROM targets WHERE t.id = targets.id
    RETURNING targets.ord, t.organization_id, t.flow_execution_id, t.task_name, {data} AS data
)"""
_OUTPUTS_CTES = """
closure AS (
    SELECT name, ord FROM unnest(%(names)s::text[]) WITH ORDINALITY AS n(name, ord)
),
marked AS (
    UPDATE {table} AS o
    SET status = %(stale)s, stale_status = %(stale)s, updated_at = %(now)s
    FROM closure
    WHERE o.flow_execution_id = %(flow_execution_id)s AND o.task_name = closure.name
        AND o.status <> %(deleted)s AND (o.status <> %(stale)s OR o.stale_status <> %(stale)s)
    RETURNING closure.ord, o.organization_id, o.flow_execution_id, o.task_name, {data} AS data
)"""
_SELECT = (
    "SELECT %(event_type)s::text AS type, organization_id, %(flow_id)s::uuid AS flow_id,"
    " flow_execution_id, task_name, data, ord FROM marked"
)


def mark_stale_set_based(run: Run, closure: list[str], *, reason: dict[str, Any]) -> list[str]:
    """PostgreSQL: ``mark_stale`` set-based (see above)."""
    now = timezone.now()
    params = {
        "names": closure,
        "flow_execution_id": run.execution.id,
        "deleted": TE.DELETED,
        "stale": StaleStatus.STALE,
        "reason": json.dumps(reason),
        "now": now,
        "flow_id": run.flow_id,
    }
    marked = emit_query(
        ctes=_EXECUTIONS_CTES.format(
            table=rows.table(TaskExecution), data=TASK_EXECUTION.data_sql("t")
        ),
        select=_SELECT,
        params={**params, "event_type": "task_execution.stale"},
    )
    names = [message["task_name"] for message in marked]
    emit_query(
        ctes=_OUTPUTS_CTES.format(table=rows.table(TaskOutput), data=TASK_OUTPUT.data_sql("o")),
        select=_SELECT,
        params={**params, "names": names, "event_type": UPDATED},
    )
    for name in names:  # what this operation loaded follows the rows
        run.outputs.pop(name, None)
        task = run.latest.get(name)
        if task is not None:
            task.stale_status, task.stale_reason, task.updated_at = StaleStatus.STALE, reason, now
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
