"""Staleness: an edited output outdates everything downstream of it.

Editing a task's output marks the latest execution (and the output) of every task in its
transitive downstream closure ``stale`` with a ``stale_reason`` naming the edit, and a finished
flow execution ``stale``. ``rerun_downstream`` (``PUT …?execute_flow=true``) queues exactly
that closure again at the next ``task_execution_idx``, in dependency order: a stale task is
queued once all its dependencies have completed again, with inputs resolved anew.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from executions.engine import transitions
from executions.engine.events import emit_query
from executions.engine.scheduling import maybe_finish, schedule_ready, sync_outputs
from executions.engine.state import Run
from executions.enums import (
    FLOW_EXECUTION_TERMINAL,
    FlowExecutionStatus,
    StaleStatus,
    TaskExecutionStatus,
)
from executions.models import TaskExecution
from executions.representations import task_execution_data_sql
from flowplatform.representation import iso

FE = FlowExecutionStatus
TE = TaskExecutionStatus


def stale_targets(run: Run, task_name: str) -> list[str]:
    """Tasks an edit of ``task_name`` makes stale: its downstream closure that has run (has
    an execution), in dependency order."""
    dag = run.definition.dag
    closure = dag.downstream_closure([task_name])
    have = _names_with_executions(run, closure)
    return [name for name in dag.in_order(closure) if name in have]


def _names_with_executions(run: Run, names: set[str]) -> set[str]:
    """Those of ``names`` that have a (non-deleted) execution; only names are read."""
    unknown = names - run.known
    have = {name for name in names - unknown if name in run.latest}
    if unknown:
        qs = (
            TaskExecution.objects.filter(flow_execution_id=run.execution.id)
            .exclude(status=TE.DELETED)
            .order_by()
        )
        if len(unknown) <= 500:
            qs = qs.filter(task_name__in=unknown)
        have.update(n for n in qs.values_list("task_name", flat=True).distinct() if n in unknown)
    return have


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

    Each marked execution and output is published (``task_execution.stale``,
    ``task_output.updated``) in this transaction. On PostgreSQL that is set-based, whatever
    the size of the closure: one statement marks the executions and writes their events,
    one does the same for the outputs; no row is loaded into Python.
    """
    from outputs import services as outputs

    dag = run.definition.dag
    closure = dag.downstream_closure([source.task_name])
    if not closure:
        return []
    reason = stale_reason(source, actor=actor)
    if connection.vendor == "postgresql":
        names = _mark_latest_stale(run, dag.in_order(closure), reason=reason)
    else:
        latest = run.load(closure)
        names = [name for name in dag.in_order(closure) if name in latest]
        transitions.mark_tasks_stale(
            [latest[name] for name in names], flow_id=run.flow_id, reason=reason
        )
    if not names:
        return []
    outputs.mark_outputs_stale(flow_execution=run.execution, task_names=names, flow_id=run.flow_id)
    for name in names:
        run.outputs.pop(name, None)  # changed behind the cache
    if run.execution.status in FLOW_EXECUTION_TERMINAL:
        transitions.change_flow_status(run.execution, FE.STALE)
    return names


# The latest execution of each named task (those that have one) is flagged stale, its status
# kept, and announced as ``task_execution.stale`` in dependency order (``ord``: the position
# in ``names``).
_MARK_STALE_CTES = """
targets AS (
    SELECT DISTINCT ON (t.task_name) t.id, n.ord
    FROM {table} AS t
    JOIN jsonb_array_elements_text(%(names)s::jsonb) WITH ORDINALITY AS n(name, ord)
        ON n.name = t.task_name
    WHERE t.flow_execution_id = %(flow_execution_id)s AND t.status <> %(deleted)s
    ORDER BY t.task_name, t.task_execution_idx DESC
),
marked AS (
    UPDATE {table} AS t
    SET stale_status = %(stale)s, stale_reason = %(reason)s::jsonb, updated_at = %(now)s
    FROM targets WHERE t.id = targets.id
    RETURNING targets.ord, t.organization_id, t.flow_execution_id, t.task_name, {data} AS data
)"""
_MARK_STALE_SELECT = (
    "SELECT %(event_type)s::text AS type, organization_id, %(flow_id)s::uuid AS flow_id,"
    " flow_execution_id, task_name, data, ord FROM marked"
)


def _mark_latest_stale(run: Run, names: list[str], *, reason: dict[str, Any]) -> list[str]:
    """PostgreSQL: flag the latest execution of each of ``names`` (dependency order) stale
    with ``reason`` and publish it, in one statement. Returns the names marked, in order."""
    now = timezone.now()
    ctes = _MARK_STALE_CTES.format(
        table=connection.ops.quote_name(TaskExecution._meta.db_table),
        data=task_execution_data_sql("t"),
    )
    messages = emit_query(
        ctes=ctes,
        select=_MARK_STALE_SELECT,
        params={
            "names": json.dumps(names),
            "flow_execution_id": run.execution.id,
            "deleted": TE.DELETED,
            "stale": StaleStatus.STALE,
            "reason": json.dumps(reason),
            "now": now,
            "event_type": "task_execution.stale",
            "flow_id": run.flow_id,
        },
    )
    marked = [message["task_name"] for message in messages]
    _patch_loaded(run, marked, reason=reason, now=now)
    return marked


def _patch_loaded(run: Run, names: Iterable[str], *, reason: dict[str, Any], now: datetime) -> None:
    """Bring the executions this operation has loaded in step with the marking."""
    for name in names:
        task = run.latest.get(name)
        if task is not None:
            task.stale_status, task.stale_reason, task.updated_at = StaleStatus.STALE, reason, now


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
