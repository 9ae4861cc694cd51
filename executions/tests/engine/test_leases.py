"""Claims take what the ``claimable`` rule says, through the statement compiled from it."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from django.db import connection, transaction
from django.utils import timezone

from executions.engine import leases, rows
from executions.enums import FlowExecutionStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from executions.tests.engine.factories import create_execution, make_flow, shape_definition
from executions.tests.engine.test_rows import new_task

pytestmark = pytest.mark.django_db

TE = TaskExecutionStatus


def test_claimable_rule(tenant, outsider) -> None:
    """The compiled claim statement is the ``claimable`` queryset's own SQL, with the values
    bound where the queryset puts them, and it picks exactly the rows the queryset finds, in
    its order: due, queued, of an executor asked for, of a live flow execution of the
    organization."""
    now = timezone.now()
    flow = make_flow(tenant.organization, shape_definition({"a": [], "b": []}))
    live, stopped = create_execution(flow), create_execution(flow)
    FlowExecution.objects.filter(id=live.id).update(status=FlowExecutionStatus.RUNNING)
    FlowExecution.objects.filter(id=stopped.id).update(status=FlowExecutionStatus.COMPLETED)
    theirs = create_execution(make_flow(outsider.organization, shape_definition({"a": []})))
    FlowExecution.objects.filter(id=theirs.id).update(status=FlowExecutionStatus.RUNNING)
    rows.insert(
        [
            new_task(live, "a", 0, available_at=now - timedelta(seconds=3)),
            new_task(live, "a", 1, available_at=now - timedelta(seconds=1)),
            new_task(live, "b", 0, available_at=now - timedelta(seconds=2)),
            new_task(live, "b", 1, available_at=now + timedelta(seconds=5)),
            new_task(live, "b", 2, status=TE.RUNNING),
            new_task(stopped, "a", 0, available_at=now - timedelta(seconds=4)),
            new_task(theirs, "a", 0, available_at=now - timedelta(seconds=4)),
        ]
    )
    TaskExecution.objects.filter(task_name="b", task_execution_idx=0).update(
        task_executor_name="other"
    )
    claimable_count = {1: 2, 2: 3, 3: 3}
    for executors in (["noop"], ["noop", "other"], ["other", "missing", "noop"]):
        rule = leases.claimable(organization=tenant.organization, executors=executors, now=now)
        values = {"organization": tenant.organization.pk, "executors": executors, "now": now}
        for limit in (None, 1, 8):
            compiled = leases._claimable_sql(len(executors), limit)
            queryset = rule.values("id")[:1] if limit is None else rule.values("id")[:limit]
            if limit is not None:
                queryset = queryset.select_for_update(skip_locked=True, of=("self",))
            sql, params = queryset.query.sql_with_params()
            assert (compiled.sql, compiled.params_for(**values)) == (sql, list(params))
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(compiled.sql, compiled.params_for(**values))
                picked = [UUID(str(row[0])) for row in cursor.fetchall()]
            assert picked == [row["id"] for row in queryset]
        assert rule.count() == claimable_count[len(executors)]


def test_a_value_the_query_does_not_hold_is_refused(tenant) -> None:
    def build(*, organization, name):  # noqa: ANN001, ANN202
        return TaskExecution.objects.filter(organization=organization)

    with pytest.raises(ValueError, match="'name'"):
        rows.Compiled(TaskExecution, build, {"organization": "organization", "name": "task_name"})
