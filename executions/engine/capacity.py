"""Per-organization concurrency: at most ``max_concurrent_executions`` flow executions run at
once; the others stay ``queued`` and start in creation order as slots free up.

Lock order: a flow execution's row (held by the caller), then the organization's row, then
other queued flow executions with ``SKIP LOCKED`` (never waited for), so two transactions
filling slots of one organization cannot deadlock. Row locks are ``FOR NO KEY UPDATE``: they
serialize the engine but never block the foreign-key checks of rows that merely refer to the
locked ones (every event and task status of the organization refers to its row).
Re-executions of finished flow executions are a person's explicit request and start at once,
even beyond the cap.
"""

from __future__ import annotations

from contextvars import ContextVar
from uuid import UUID

from django.db import connection

from executions.enums import FLOW_EXECUTION_ACTIVE, FlowExecutionStatus
from executions.models import FlowExecution
from flowplatform.models import Organization

_filling: ContextVar[bool] = ContextVar("engine_filling_slots", default=False)


def fill_slots(*, organization_id: UUID) -> list[FlowExecution]:
    """Start the organization's oldest queued flow executions while it has free slots."""
    if _filling.get():
        return []  # the outer call re-counts after each start
    from executions.engine.scheduling import begin_run
    from executions.engine.state import Run

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
