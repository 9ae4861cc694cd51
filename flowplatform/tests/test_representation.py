"""One renderer per resource: the PostgreSQL form of each field table (``data_sql``) writes
exactly what its Python form (``data``) writes, on stored rows; and ``iso`` is one rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from executions.models import FlowExecution, TaskExecution
from executions.representations import FLOW_EXECUTION, TASK_EXECUTION
from flowplatform.representation import iso, iso_sql
from outputs.models import TaskOutput
from outputs.representations import TASK_OUTPUT
from outputs.tests.factories import make_flow_execution, make_output, make_task_execution

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL renderers"),
]

WHOLE_SECOND = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def sql_rendering(renderer, model, pk) -> dict:  # noqa: ANN001
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {renderer.data_sql('r')}::text FROM {table} AS r WHERE r.id = %s", [pk]
        )
        (text,) = cursor.fetchone()
    return json.loads(text)


def test_each_sql_renderer_writes_what_its_python_renderer_writes(tenant):
    flow_execution = make_flow_execution(tenant.organization)
    FlowExecution.objects.filter(id=flow_execution.id).update(started_at=WHOLE_SECOND)
    task = make_task_execution(
        flow_execution,
        "a",
        status="completed",
        output={"u": 'é ✓ "q" \\', "f": 0.1, "big": 2**63, "n": None, "l": [[], {}]},
        error=None,
        stale_reason={"task_name": "x"},
    )
    TaskExecution.objects.filter(id=task.id).update(
        started_at=WHOLE_SECOND, completed_at=None, created_at=WHOLE_SECOND
    )
    output = make_output(flow_execution, "a", status="completed", summary=[1, "s"], tags=None)
    TaskOutput.objects.filter(id=output.id).update(updated_at=WHOLE_SECOND)
    for renderer, model, pk in (
        (TASK_EXECUTION, TaskExecution, task.id),
        (TASK_OUTPUT, TaskOutput, output.id),
        (FLOW_EXECUTION, FlowExecution, flow_execution.id),
    ):
        assert sql_rendering(renderer, model, pk) == renderer.data(model.objects.get(id=pk))


@pytest.mark.parametrize(
    "moment",
    [
        WHOLE_SECOND,
        datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_iso_has_one_rule(moment):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {iso_sql('%s::timestamptz')}", [moment])
        (text,) = cursor.fetchone()
    assert text == iso(moment)
