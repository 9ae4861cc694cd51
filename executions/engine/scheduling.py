"""Deciding what runs next inside one flow execution.

A running flow execution keeps ``pending_tasks``: the tasks it still has to queue. A pending
task is queued (with its input resolved from its dependencies' outputs) as soon as none of its
dependencies is pending and each one's latest execution is completed. A fresh start lists
every task; re-executions list what they redo. The flow execution ends when nothing is active
and nothing more can be queued: ``completed`` if every task's latest execution completed
(then ``stale`` if one of them is stale), ``failed`` otherwise.

Failures: a failed task is retried at the next ``task_execution_idx`` after its backoff while
attempts remain. When they run out (or its input cannot be resolved), the flow execution fails
at once: queued and awaiting tasks are cancelled, running ones may finish and report, nothing
new is scheduled. Every function here expects the flow execution's row lock (``Run``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from datetime import timedelta
from uuid import UUID

from django.db import connection
from django.utils import timezone

from executions import dsl
from executions.engine import observe, outputs, transitions
from executions.engine.state import Run, load_runs
from executions.enums import (
    FLOW_EXECUTION_ACTIVE,
    TASK_ACTIVE,
    FlowExecutionStatus,
    StaleStatus,
    TaskExecutionStatus,
)
from executions.models import FlowExecution, TaskExecution
from flowplatform.models import Organization

TE = TaskExecutionStatus
FE = FlowExecutionStatus
RESOLUTION_ERROR = "InputResolutionError"


# -- outputs ----------------------------------------------------------------------------------


def sync_outputs(run: Run, tasks: Iterable[TaskExecution], *, prefetch: Iterable[str] = ()) -> None:
    """Keep each task's output in step with its (latest) execution, in bulk. ``prefetch``
    names tasks whose outputs this operation will likely sync next (loaded in the same
    query, then cached in ``run.outputs``)."""
    outputs.sync_outputs(
        list(tasks),
        flow_id=run.flow_id,
        flow_version=run.execution.flow_version,
        known=run.outputs,
        prefetch=prefetch,
    )


def prefetch(run: Run, task_names: Sequence[str], *, with_outputs: bool = True) -> None:
    """Load in one query each what reacting to ``task_names`` will read: their latest
    executions and those around them (``Run.load_around``) and, with ``outputs``, the
    outputs of those tasks and of the tasks downstream (``run.outputs``)."""
    run.load_around(*task_names)
    if with_outputs:
        outputs.load_outputs([(run.execution.id, run.around(*task_names), run.outputs)])


def prefetch_runs(work: Sequence[tuple[Run, Sequence[str]]]) -> None:
    """``prefetch`` for several runs (distinct flow executions) at once: one query for their
    latest executions, one for their outputs (those of a run's single task are left for
    ``sync_outputs`` to read, as ``prefetch`` leaves them, when there is one run)."""
    if len(work) == 1:
        run, names = work[0]
        prefetch(run, names, with_outputs=len(names) > 1)
        return
    load_runs([(run, run.needed_around(*names)) for run, names in work])
    outputs.load_outputs(
        [(run.execution.id, run.around(*names), run.outputs) for run, names in work]
    )


# -- queueing ---------------------------------------------------------------------------------


def begin_run(run: Run, names: Sequence[str], *, actor: str | None = None) -> list[TaskExecution]:
    """Start (or restart) ``run`` so that it (re)does ``names``."""
    transitions.change_flow_status(run.execution, FE.RUNNING, actor=actor)
    run.set_pending(run.definition.dag.in_order(names))
    queued = schedule_ready(run)
    if not queued:
        maybe_finish(run)
    return queued


def schedule_ready(run: Run, candidates: Iterable[str] | None = None) -> list[TaskExecution]:
    """Queue the pending tasks (among ``candidates``, default all) that are ready now."""
    pending = run.pending
    if not pending:
        return []
    names = pending if candidates is None else [n for n in pending if n in set(candidates)]
    if not names:
        return []
    deps = {dep for name in names for dep in run.definition.task(name).dependencies}
    run.load([*names, *deps])
    waiting = set(pending)
    ready = [name for name in names if _is_ready(run, name, waiting)]
    if not ready:
        return []
    chosen = set(ready)
    run.set_pending([name for name in pending if name not in chosen])
    return queue_tasks(run, ready)


def _is_ready(run: Run, name: str, pending: set[str]) -> bool:
    latest = run.latest.get(name)
    if latest is not None and latest.status in TASK_ACTIVE:
        return False  # its current execution has to end first
    for dep in run.definition.task(name).dependencies:
        done = run.latest.get(dep)
        if dep in pending or done is None or done.status != TE.COMPLETED:
            return False
    return True


def queue_tasks(run: Run, names: Sequence[str]) -> list[TaskExecution]:
    """New executions of ``names`` (dependency order) at their next index, inputs resolved.

    An input that cannot be resolved fails its task with ``InputResolutionError`` and, that
    being final, the flow execution. A task fed by a stale output is stale itself.
    """
    new = [_next_execution(run, name) for name in names]
    created = transitions.create_task_executions(new, flow_id=run.flow_id)
    for task in created:
        run.record(task)
    sync_outputs(run, created)
    if any(task.status == TE.FAILED for task in created):
        fail_flow(run)
    return created


def _next_execution(run: Run, name: str) -> TaskExecution:
    spec = run.definition.task(name)
    previous = run.latest.get(name)
    upstream = {dep: run.latest[dep] for dep in spec.dependencies if dep in run.latest}
    stale = next((t for t in upstream.values() if t.stale_status == StaleStatus.STALE), None)
    values: dict = {"status": TE.QUEUED if spec.claimable else TE.AWAITING_INPUT}
    try:
        values["input"] = dsl.resolve_input(
            task=spec,
            flow_input=run.execution.input,
            upstream_outputs={dep: task.output for dep, task in upstream.items()},
        )
    except dsl.ResolutionError as exc:
        values.update(status=TE.FAILED, input=None, error=_error(str(exc), RESOLUTION_ERROR))
    if stale is not None:
        values.update(stale_status=StaleStatus.STALE, stale_reason=stale.stale_reason)
    return transitions.build_task_execution(
        execution=run.execution,
        task_name=name,
        idx=previous.task_execution_idx + 1 if previous else 0,
        executor=spec.task_executor_name,
        max_attempts=spec.retries.max_attempts,
        timeout_seconds=spec.timeout_seconds,
        **values,
    )


def _error(message: str, type_: str) -> dict[str, str]:
    return {"message": message, "type": type_, "traceback": ""}


# -- reacting to finished tasks ---------------------------------------------------------------


def on_task_finished(run: Run, task: TaskExecution) -> None:
    """React to ``task``, the latest execution of its task, having reached a terminal status:
    retry it, fail or cancel the flow execution, queue what it unblocked, or finish."""
    status = run.execution.status
    if status == FE.CANCEL_REQUESTED:
        finish_cancel_if_idle(run)
        return
    if status != FE.RUNNING:
        return  # failed fast, cancelled, deleted...: the report is only recorded
    run.record(task)
    if task.status == TE.FAILED:
        if _retryable(task):
            queue_retry(run, task)
        else:
            fail_flow(run)
        return
    if task.status == TE.CANCELLED:
        cancel_run(run)  # a task that was stopped stops its flow execution
        return
    downstream = run.definition.dag.downstream(task.task_name)
    if not schedule_ready(run, [task.task_name, *downstream]):
        maybe_finish(run)


def _retryable(task: TaskExecution) -> bool:
    error_type = task.error.get("type") if isinstance(task.error, dict) else None
    return task.attempt < task.max_attempts and error_type != RESOLUTION_ERROR


def queue_retry(run: Run, task: TaskExecution) -> TaskExecution:
    """The next attempt of a failed task, claimable after the backoff:
    ``backoff_seconds * backoff_factor ** (attempt - 1)``."""
    spec = run.definition.task(task.task_name)
    delay = spec.retries.delay_after(task.attempt)
    retry = transitions.build_task_execution(
        execution=run.execution,
        task_name=task.task_name,
        idx=task.task_execution_idx + 1,
        status=TE.QUEUED,
        executor=task.task_executor_name,
        max_attempts=task.max_attempts,
        timeout_seconds=task.timeout_seconds,
        attempt=task.attempt + 1,
        input=task.input,
        available_at=timezone.now() + timedelta(seconds=delay),
        stale_status=task.stale_status,
        stale_reason=task.stale_reason,
    )
    (created,) = transitions.create_task_executions([retry], flow_id=run.flow_id)
    observe.retry_queued()
    run.record(created)
    sync_outputs(run, [created])
    return created


def has_active_tasks(run: Run) -> bool:
    # An execution this operation loaded as active is still active: only transactions
    # holding the flow execution's lock end one (a claim only turns queued into running).
    if any(task.status in TASK_ACTIVE for task in run.latest.values()):
        return True
    return TaskExecution.objects.filter(
        flow_execution_id=run.execution.id, status__in=TASK_ACTIVE
    ).exists()


def maybe_finish(run: Run) -> None:
    """End a running flow execution that has nothing active and nothing left to queue."""
    if run.execution.status != FE.RUNNING or has_active_tasks(run):
        return
    if run.pending and schedule_ready(run):
        return
    latest = run.load()
    names = run.definition.names
    complete = not run.pending and all(
        name in latest and latest[name].status == TE.COMPLETED for name in names
    )
    finish_flow(run, FE.COMPLETED if complete else FE.FAILED)
    if complete and any(latest[name].stale_status == StaleStatus.STALE for name in names):
        transitions.change_flow_status(run.execution, FE.STALE)


def finish_flow(run: Run, status: str, *, actor: str | None = None) -> None:
    """Move to a final status and hand the freed slot to the organization's queue."""
    run.set_pending([])
    transitions.change_flow_status(run.execution, status, actor=actor)
    fill_slots(organization_id=run.execution.organization_id)


def _waiting_tasks(run: Run) -> list[TaskExecution]:
    return list(
        TaskExecution.objects.filter(
            flow_execution_id=run.execution.id, status__in=(TE.QUEUED, TE.AWAITING_INPUT)
        )
    )


def fail_flow(run: Run) -> None:
    """Fail fast: cancel what waits, let running tasks finish, schedule nothing more."""
    cancelled = transitions.cancel_tasks(_waiting_tasks(run), flow_id=run.flow_id)
    for task in cancelled:
        run.record(task)
    sync_outputs(run, cancelled)
    finish_flow(run, FE.FAILED)


def cancel_run(run: Run, *, actor: str | None = None) -> None:
    """Cancel queued and awaiting tasks, ask running ones to stop; the flow execution is
    ``cancelled`` at once if none runs, else ``cancel_requested`` until the last one ends."""
    cancelled = transitions.cancel_tasks(_waiting_tasks(run), flow_id=run.flow_id, actor=actor)
    sync_outputs(run, cancelled)
    run.set_pending([])
    if transitions.request_cancellation(run.execution) or _has_running(run):
        transitions.change_flow_status(run.execution, FE.CANCEL_REQUESTED, actor=actor)
    else:
        finish_flow(run, FE.CANCELLED, actor=actor)


def _has_running(run: Run) -> bool:
    return TaskExecution.objects.filter(
        flow_execution_id=run.execution.id, status=TE.RUNNING
    ).exists()


def finish_cancel_if_idle(run: Run) -> None:
    if run.execution.status != FE.CANCEL_REQUESTED:
        return
    cancelled = transitions.cancel_tasks(_waiting_tasks(run), flow_id=run.flow_id)
    sync_outputs(run, cancelled)
    if not _has_running(run):
        finish_flow(run, FE.CANCELLED)


# -- the per-organization cap -----------------------------------------------------------------
# Per-organization concurrency: at most ``max_concurrent_executions`` flow executions run at
# once; the others stay ``queued`` and start in creation order as slots free up.
#
# Lock order: a flow execution's row (held by the caller), then the organization's row, then
# other queued flow executions with ``SKIP LOCKED`` (never waited for), so two transactions
# filling slots of one organization cannot deadlock. Row locks are ``FOR NO KEY UPDATE``: they
# serialize the engine but never block the foreign-key checks of rows that merely refer to the
# locked ones (every event and task status of the organization refers to its row).
# Re-executions of finished flow executions are a person's explicit request and start at once,
# even beyond the cap.

_filling: ContextVar[bool] = ContextVar("engine_filling_slots", default=False)


def fill_slots(*, organization_id: UUID) -> list[FlowExecution]:
    """Start the organization's oldest queued flow executions while it has free slots."""
    if _filling.get():
        return []  # the outer call re-counts after each start
    token = _filling.set(True)
    started: list[FlowExecution] = []
    try:
        cap = (
            Organization.objects.select_for_update(no_key=True)
            .values_list("max_concurrent_executions", flat=True)
            .get(id=organization_id)
        )
        while _active_count(organization_id) < cap:
            execution = _oldest_queued(organization_id)
            if execution is None:
                break
            run = Run.of(execution)
            begin_run(run, run.definition.names)
            started.append(execution)
    finally:
        _filling.reset(token)
    return started


def _active_count(organization_id: UUID) -> int:
    return FlowExecution.objects.filter(
        organization_id=organization_id, status__in=FLOW_EXECUTION_ACTIVE
    ).count()


def _oldest_queued(organization_id: UUID) -> FlowExecution | None:
    qs = FlowExecution.objects.filter(
        organization_id=organization_id, status=FlowExecutionStatus.QUEUED
    ).order_by("created_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True, no_key=True)
    return qs.first()
