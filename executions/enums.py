"""Statuses and the transitions allowed between them: the rules as data."""

from __future__ import annotations

from django.db import models

# Shared with task outputs, whose app defines them (outputs never imports executions).
from outputs.enums import EditedStatus as EditedStatus
from outputs.enums import StaleStatus as StaleStatus
from outputs.enums import TaskOutputStatus as TaskOutputStatus


class FlowStatus(models.TextChoices):
    DRAFT = "draft"
    PUBLISHED = "published"


class FlowExecutionStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    STALE = "stale"
    DELETED = "deleted"


class TaskExecutionStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_INPUT = "awaiting_input"
    STALE = "stale"
    DELETED = "deleted"


FE = FlowExecutionStatus
TE = TaskExecutionStatus

FLOW_EXECUTION_TERMINAL = frozenset({FE.COMPLETED, FE.FAILED, FE.CANCELLED})
FLOW_EXECUTION_ACTIVE = frozenset({FE.RUNNING, FE.CANCEL_REQUESTED})

FLOW_EXECUTION_TRANSITIONS: dict[str, frozenset[str]] = {
    FE.QUEUED: frozenset({FE.RUNNING, FE.CANCELLED, FE.FAILED, FE.COMPLETED}),
    FE.RUNNING: frozenset({FE.COMPLETED, FE.FAILED, FE.CANCEL_REQUESTED, FE.CANCELLED}),
    FE.CANCEL_REQUESTED: frozenset({FE.CANCELLED}),
    FE.COMPLETED: frozenset({FE.STALE, FE.RUNNING}),
    FE.FAILED: frozenset({FE.STALE, FE.RUNNING}),
    FE.CANCELLED: frozenset({FE.RUNNING, FE.STALE}),
    FE.STALE: frozenset({FE.RUNNING, FE.COMPLETED, FE.FAILED}),
    FE.DELETED: frozenset(),
}
# Any status may move to deleted (soft delete).
for _status in list(FLOW_EXECUTION_TRANSITIONS):
    if _status != FE.DELETED:
        FLOW_EXECUTION_TRANSITIONS[_status] = FLOW_EXECUTION_TRANSITIONS[_status] | {FE.DELETED}

TASK_TERMINAL = frozenset({TE.COMPLETED, TE.FAILED, TE.CANCELLED})
# What a worker may report through POST /task-executions (seed 002).
TASK_REPORTABLE = frozenset({TE.QUEUED, TE.RUNNING, TE.COMPLETED, TE.FAILED, TE.CANCELLED})

# Reports may skip states (queued → completed is fine); terminal states only change by a
# person's edit (PUT) or by staleness.
TASK_EXECUTION_TRANSITIONS: dict[str, frozenset[str]] = {
    TE.QUEUED: frozenset({TE.RUNNING, TE.COMPLETED, TE.FAILED, TE.CANCELLED, TE.AWAITING_INPUT}),
    TE.RUNNING: frozenset({TE.COMPLETED, TE.FAILED, TE.CANCELLED, TE.QUEUED}),
    TE.AWAITING_INPUT: frozenset({TE.COMPLETED, TE.FAILED, TE.CANCELLED}),
    TE.COMPLETED: frozenset({TE.STALE}),
    TE.FAILED: frozenset({TE.STALE}),
    TE.CANCELLED: frozenset({TE.STALE}),
    TE.STALE: frozenset(),
    TE.DELETED: frozenset(),
}


# Task executions that still hold work: a flow execution is not finished while any exists.
TASK_ACTIVE = frozenset({TE.QUEUED, TE.RUNNING, TE.AWAITING_INPUT})
# What a person's edit (PUT /task-executions) may set, from any status but deleted; the only
# way a terminal execution changes (DESIGN §8).
TASK_EDIT_TARGETS = frozenset({TE.COMPLETED, TE.FAILED, TE.CANCELLED})
