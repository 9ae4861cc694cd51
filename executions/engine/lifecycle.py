"""Starting, cancelling, re-executing and deleting flow executions."""

from __future__ import annotations

from executions.engine import transitions
from executions.engine.events import engine_operation
from executions.engine.scheduling import begin_run, cancel_run, fill_slots, sync_outputs
from executions.engine.state import Run, lock_flow_execution
from executions.enums import (
    FLOW_EXECUTION_ACTIVE,
    EditedStatus,
    FlowExecutionStatus,
    StaleStatus,
    TaskExecutionStatus,
)
from executions.models import FlowExecution, TaskExecution
from flowplatform.exceptions import BadRequest, Conflict

FE = FlowExecutionStatus
TE = TaskExecutionStatus


@engine_operation
def start_flow_execution(*, execution: FlowExecution, actor: str) -> FlowExecution:
    """Start a ``queued`` flow execution: queue its root tasks with resolved inputs.

    It stays ``queued`` while its organization is at ``max_concurrent_executions`` and starts
    in creation order when a slot frees. Starting one that is not queued changes nothing.
    """
    locked = lock_flow_execution(
        flow_execution_id=execution.id, organization=execution.organization_id
    )
    if locked.status == FE.QUEUED:
        fill_slots(organization_id=locked.organization_id)
        locked.refresh_from_db()
    return locked


@engine_operation
def cancel_flow_execution(*, execution: FlowExecution, actor: str) -> FlowExecution:
    """Cancel: queued tasks are cancelled, running ones are asked to stop (their heartbeat
    answers ``cancel_requested``) and the flow execution is ``cancel_requested`` until the
    last one ends, then ``cancelled``. Repeating it is harmless; a finished flow execution
    cannot be cancelled (``Conflict``)."""
    locked = lock_flow_execution(
        flow_execution_id=execution.id, organization=execution.organization_id
    )
    if locked.status in (FE.CANCELLED, FE.CANCEL_REQUESTED):
        return locked
    if locked.status == FE.QUEUED:
        return transitions.change_flow_status(locked, FE.CANCELLED, actor=actor)
    if locked.status != FE.RUNNING:
        raise Conflict(f"A {locked.status} flow execution cannot be cancelled.")
    cancel_run(Run.of(locked, actor=actor), actor=actor)
    return locked


@engine_operation
def reexecute_flow_execution(
    *,
    execution: FlowExecution,
    actor: str,
    only_stale: bool = False,
    only_failed: bool = False,
) -> FlowExecution:
    """Run a finished flow execution again: every task, only the stale ones, or only what
    failed (``only_failed``: every task whose latest execution is not completed, i.e. the
    failed tasks, what they blocked and what failing fast cancelled).

    New executions get the next ``task_execution_idx``, queued in dependency order with
    re-resolved inputs. ``Conflict`` while the flow execution is still queued or running;
    nothing to redo changes nothing.
    """
    if only_stale and only_failed:
        raise BadRequest("Choose only_stale or only_failed, not both.")
    locked = lock_flow_execution(
        flow_execution_id=execution.id, organization=execution.organization_id
    )
    if locked.status == FE.QUEUED or locked.status in FLOW_EXECUTION_ACTIVE:
        raise Conflict(f"The flow execution is {locked.status}; wait for it to finish.")
    run = Run.of(locked, actor=actor)
    latest = run.load()
    names = run.definition.names
    if only_stale:
        todo = [n for n in names if n in latest and latest[n].stale_status == StaleStatus.STALE]
    elif only_failed:
        todo = [n for n in names if n not in latest or latest[n].status != TE.COMPLETED]
    else:
        todo = list(names)
    if not todo:
        return locked
    if only_stale:
        _mark_sources_reexecuted(run, [latest[n] for n in todo])
    begin_run(run, todo, actor=actor)
    return locked


def _mark_sources_reexecuted(run: Run, stale: list[TaskExecution]) -> None:
    """The edits that made these tasks stale are now re-executed."""
    ids = {
        t.stale_reason.get("task_execution_id") for t in stale if isinstance(t.stale_reason, dict)
    }
    sources = list(
        TaskExecution.objects.filter(
            id__in=[pk for pk in ids if pk],
            flow_execution_id=run.execution.id,
            edited_status=EditedStatus.EDITED_NOT_REEXECUTED,
        )
    )
    transitions.set_edited_status(sources, EditedStatus.EDITED_REEXECUTED, flow_id=run.flow_id)


@engine_operation
def delete_flow_execution(*, execution: FlowExecution, actor: str) -> FlowExecution:
    """Soft delete: status ``deleted``; waiting tasks are cancelled and running ones asked to
    stop, its slot goes to the organization's queue. Deleting twice changes nothing."""
    locked = lock_flow_execution(
        flow_execution_id=execution.id, organization=execution.organization_id
    )
    run = Run.of(locked, actor=actor)
    was_active = locked.status in FLOW_EXECUTION_ACTIVE
    waiting = TaskExecution.objects.filter(
        flow_execution_id=locked.id, status__in=(TE.QUEUED, TE.AWAITING_INPUT)
    )
    sync_outputs(run, transitions.cancel_tasks(list(waiting), flow_id=run.flow_id, actor=actor))
    transitions.request_cancellation(locked)
    run.set_pending([])
    transitions.change_flow_status(locked, FE.DELETED, actor=actor)
    if was_active:
        fill_slots(organization_id=locked.organization_id)
    return locked
