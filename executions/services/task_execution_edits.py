"""A person's edit: ``PUT /api/task-executions?execute_flow=&dry_run=`` (seed 003).

The edit updates the execution (fields not sent are left alone), recomputes its task output,
marks the transitive downstream closure stale and, with ``execute_flow``, queues that closure
again. It is how people submit a ``human_review`` task's output (status ``completed`` +
``output`` on an execution ``awaiting_input``); the flow execution then continues.
Optimistic locking: a body ``updated_at`` that is not the stored one is a 409; without it the
last write wins.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from executions.engine import transitions
from executions.engine.events import collecting
from executions.engine.scheduling import on_task_finished, sync_outputs
from executions.engine.staleness import mark_downstream_stale, rerun_downstream, stale_targets
from executions.engine.state import Run, lock_flow_execution
from executions.enums import (
    TASK_ACTIVE,
    TASK_TERMINAL,
    EditedStatus,
    FlowExecutionStatus,
    TaskExecutionStatus,
)
from executions.models import TaskExecution
from flowplatform.exceptions import BadRequest, Conflict, NotFound
from flowplatform.principal import Principal

EDITABLE_FIELDS = ("status", "output", "error", "input")
IDENTITY_FIELDS = ("flow_execution_id", "task_name", "task_execution_idx")


@dataclass(frozen=True)
class EditResult:
    task_execution: TaskExecution
    # Only for dry runs: what the edit would mark stale, in dependency order.
    would_mark_stale: list[str] | None = None


@transaction.atomic
def edit_task_execution(
    *,
    principal: Principal,
    data: Mapping[str, Any],
    execute_flow: bool = False,
    dry_run: bool = False,
) -> EditResult:
    """Apply a person's edit to the task execution ``data["id"]``.

    Holds the flow execution's row lock, then the task execution's; ``Conflict`` on an
    ``updated_at`` mismatch (nothing changes). ``dry_run`` checks everything, changes
    nothing and returns the execution as it would be with ``would_mark_stale``.
    """
    principal.check_body_organization(data)
    organization = principal.organization
    ref = (
        TaskExecution.objects.filter(id=data["id"], organization=organization)
        .exclude(status=TaskExecutionStatus.DELETED)
        .values_list("flow_execution_id", flat=True)
        .first()
    )
    if ref is None:
        raise NotFound(f"Task execution {data['id']} not found.")
    with collecting():
        execution = lock_flow_execution(flow_execution_id=ref, organization=organization)
        task = TaskExecution.objects.select_for_update().get(id=data["id"])
        _check_identity(task, data)
        if data.get("updated_at") is not None and data["updated_at"] != task.updated_at:
            raise Conflict(
                "The task execution was changed since it was read (updated_at differs).",
                details=[{"loc": ["body", "updated_at"], "msg": "Stale.", "type": "conflict"}],
            )
        changes = {name: data[name] for name in EDITABLE_FIELDS if name in data}
        transitions.check_edit(task, changes.get("status"))
        if execute_flow and execution.status == FlowExecutionStatus.CANCEL_REQUESTED:
            raise Conflict("The flow execution is being cancelled.")
        actor = principal.actor_for(data)
        run = Run.of(execution, actor=actor)
        latest = run.is_latest(task)
        propagates = latest and _outdates_downstream(task, changes)
        if dry_run:
            names = stale_targets(run, task.task_name) if propagates else []
            preview = _preview(task, changes, actor, reexecuted=latest and execute_flow)
            return EditResult(preview, would_mark_stale=names)
        was_active = task.status in TASK_ACTIVE
        edited = (
            EditedStatus.EDITED_REEXECUTED
            if latest and execute_flow
            else EditedStatus.EDITED_NOT_REEXECUTED
        )
        transitions.edit_task(
            task, flow_id=run.flow_id, actor=actor, changes=changes, edited_status=edited
        )
        if not latest:
            return EditResult(task)  # an older attempt: corrected for the record only
        run.record(task)
        sync_outputs(run, [task])
        if propagates:
            mark_downstream_stale(run, task, actor=actor)
        if execute_flow:
            rerun_downstream(run, task, actor=actor)
        elif was_active and task.status in TASK_TERMINAL:
            on_task_finished(run, task)  # e.g. a human_review task's submitted output
        return EditResult(task)


def _outdates_downstream(task: TaskExecution, changes: Mapping[str, Any]) -> bool:
    status_changed = changes.get("status", task.status) != task.status
    return status_changed or ("output" in changes and changes["output"] != task.output)


def _check_identity(task: TaskExecution, data: Mapping[str, Any]) -> None:
    for name in IDENTITY_FIELDS:
        if name in data and str(data[name]) != str(getattr(task, name)):
            raise BadRequest(
                f"{name} cannot be changed by an edit.",
                details=[{"loc": ["body", name], "msg": "Does not match.", "type": "immutable"}],
            )


def _preview(
    task: TaskExecution, changes: Mapping[str, Any], actor: str, *, reexecuted: bool
) -> TaskExecution:
    preview = copy.copy(task)
    for name, value in changes.items():
        setattr(preview, name, value)
    preview.modified_by = actor
    preview.edited_status = (
        EditedStatus.EDITED_REEXECUTED if reexecuted else EditedStatus.EDITED_NOT_REEXECUTED
    )
    return preview
