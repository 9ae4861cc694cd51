"""The engine's SQL reads and writes give exactly what the ORM gives (``engine.rows``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from django.db import DatabaseError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from executions.engine import rows, state
from executions.engine.transitions import build_task_execution
from executions.enums import StaleStatus, TaskExecutionStatus
from executions.models import FlowExecution, TaskExecution
from executions.selectors import flow_executions_of
from executions.tests.engine.factories import create_execution, make_flow, shape_definition
from flowplatform.exceptions import NotFound
from outputs.models import TaskOutput

pytestmark = pytest.mark.django_db

TE = TaskExecutionStatus


def fields_of(instance) -> dict:  # noqa: ANN001
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def new_task(execution: FlowExecution, name: str, idx: int = 0, **values: Any) -> TaskExecution:
    """An unsaved execution (queued, noop, one attempt unless ``values`` say otherwise)."""
    fields: dict[str, Any] = {
        "status": TE.QUEUED,
        "max_attempts": 1,
        "input": {"n": idx},
        **values,
    }
    return build_task_execution(
        execution=execution,
        task_name=name,
        idx=idx,
        executor="noop",
        timeout_seconds=None,
        **fields,
    )


@pytest.fixture
def execution(tenant) -> FlowExecution:
    return create_execution(
        make_flow(tenant.organization, shape_definition({"a": [], "b": ["a"]})),
        input={"n": 1, "text": "é ✓", "nested": [1.5, None, {"k": True}]},
    )


def test_select_builds_the_instances_the_orm_builds(execution: FlowExecution) -> None:
    now = timezone.now()
    task = TaskExecution.objects.create(
        organization_id=execution.organization_id,
        flow_execution=execution,
        task_name="a",
        task_execution_idx=3,
        status=TE.RUNNING,
        input={"x": [1, 2]},
        output=None,
        error={"message": "m", "type": "T", "traceback": ""},
        started_at=now,
        lease_owner="w",
        lease_expires_at=now + timedelta(seconds=30),
        timeout_seconds=2.5,
        stale_status=StaleStatus.STALE,
        stale_reason={"task_execution_id": str(uuid4())},
    )
    output = TaskOutput.objects.create(
        organization_id=execution.organization_id,
        flow_execution=execution,
        task_name="a",
        summary={"rows": 3},
        output=[1, "two"],
        tags=["t"],
    )
    for model, instance in (
        (TaskExecution, task),
        (FlowExecution, execution),
        (TaskOutput, output),
    ):
        (found,) = rows.select(
            model, 'WHERE t."id" = %s', [rows.db_value(model, "id", instance.id)]
        )
        expected = model.objects.get(id=instance.id)
        assert fields_of(found) == fields_of(expected)
        assert not found._state.adding
        assert isinstance(found.organization_id, type(expected.organization_id))


def test_latest_executions_pick_the_highest_index_of_each_task(execution: FlowExecution) -> None:
    def add(name: str, idx: int, status: str = TE.COMPLETED) -> TaskExecution:
        return TaskExecution.objects.create(
            organization_id=execution.organization_id,
            flow_execution=execution,
            task_name=name,
            task_execution_idx=idx,
            status=status,
        )

    add("a", 0)
    latest_a = add("a", 1)
    add("b", 0)
    add("b", 1, TE.DELETED)  # deleted executions are never the latest
    found = state.latest_executions(execution.id, {"a", "b", "missing"})
    assert {name: t.task_execution_idx for name, t in found.items()} == {"a": 1, "b": 0}
    assert fields_of(found["a"]) == fields_of(TaskExecution.objects.get(id=latest_a.id))


def test_lock_flow_execution_finds_only_live_executions_of_the_organization(
    execution: FlowExecution, tenant
) -> None:
    with transaction.atomic():
        locked = state.lock_flow_execution(
            flow_execution_id=str(execution.id), organization=tenant.organization
        )
        assert fields_of(locked) == fields_of(FlowExecution.objects.get(id=execution.id))
        with pytest.raises(NotFound):
            state.lock_flow_execution(
                flow_execution_id="not-a-uuid", organization=tenant.organization
            )
        with pytest.raises(NotFound):
            state.lock_flow_execution(flow_execution_id=uuid4(), organization=tenant.organization)
        FlowExecution.objects.filter(id=execution.id).update(status="deleted")
        with pytest.raises(NotFound):
            state.lock_flow_execution(
                flow_execution_id=execution.id, organization=tenant.organization
            )


def test_insert_and_update_write_what_bulk_create_and_save_write(
    execution: FlowExecution,
) -> None:
    def build(name: str, idx: int) -> TaskExecution:
        return new_task(
            execution,
            name,
            idx,
            max_attempts=3,
            input={"list": [1, {"deep": None}], "text": "é"},
            available_at=timezone.now(),
        )

    ours, theirs = build("a", 0), build("b", 0)
    rows.insert([ours])
    TaskExecution.objects.bulk_create([theirs])
    stored_ours = TaskExecution.objects.get(id=ours.id)
    stored_theirs = TaskExecution.objects.get(id=theirs.id)
    ignored = {"id", "task_name", "created_at", "updated_at", "available_at"}
    assert {k: v for k, v in model_to_dict(stored_ours).items() if k not in ignored} == {
        k: v for k, v in model_to_dict(stored_theirs).items() if k not in ignored
    }
    assert stored_ours.input == ours.input and not ours._state.adding

    ours.status, ours.output, ours.lease_owner = TE.RUNNING, {"out": "é"}, "w"
    rows.update(ours, ["status", "output", "lease_owner", "updated_at"])
    stored = TaskExecution.objects.get(id=ours.id)
    assert (stored.status, stored.output, stored.lease_owner) == (TE.RUNNING, {"out": "é"}, "w")
    assert stored.updated_at == ours.updated_at > stored_ours.updated_at

    gone = build("a", 5)
    with pytest.raises(DatabaseError):
        rows.update(gone, ["status"])


def test_insert_batches_many_rows(execution: FlowExecution) -> None:
    many = [new_task(execution, "a", idx, status=TE.COMPLETED, input=None) for idx in range(300)]
    rows.insert(many)
    assert TaskExecution.objects.filter(flow_execution=execution).count() == 300


@pytest.mark.postgres
def test_merged_writes_send_each_kind_once_and_store_what_single_writes_store(
    execution: FlowExecution,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tasks = [new_task(execution, name) for name in ("a", "b", "c")]
    with CaptureQueriesContext(connection) as queries, rows.merging():
        rows.insert(tasks[:2])
        rows.insert(tasks[2:])
        assert not queries.captured_queries  # held back
    assert len(queries) == 1  # one INSERT for the three

    now = timezone.now()
    for task in tasks:
        task.status, task.output, task.updated_at = TE.COMPLETED, {"task": task.task_name}, now
    tasks[2].error = {"message": "é ✓", "type": "T", "traceback": None}
    with CaptureQueriesContext(connection) as queries, rows.merging():
        rows.update(tasks[0], ["status", "output", "updated_at"])
        rows.update(tasks[1], ["status", "output", "updated_at"])
        rows.update(tasks[2], ["status", "output", "updated_at", "error"])
        tasks[0].output = {"second": True}  # the same row again: sent after the first
        rows.update(tasks[0], ["output"])
    assert len(queries) == 3  # two merged statements, then the second write of a
    stored = {t.task_name: t for t in TaskExecution.objects.filter(flow_execution=execution)}
    assert stored["a"].output == {"second": True} and stored["a"].status == TE.COMPLETED
    assert stored["b"].output == {"task": "b"}
    assert stored["b"].updated_at == tasks[1].updated_at  # as pre_save stamped it
    assert stored["c"].error == {"message": "é ✓", "type": "T", "traceback": None}


@pytest.mark.postgres
def test_any_other_statement_sees_the_held_writes(execution: FlowExecution) -> None:
    task = new_task(execution, "a")
    with rows.merging():
        rows.insert([task])
        assert TaskExecution.objects.filter(id=task.id).exists()  # sent before this read
        task.status = TE.RUNNING
        rows.update(task, ["status"])
        with transaction.atomic():  # a savepoint sends them too; writes in it go at once
            assert TaskExecution.objects.get(id=task.id).status == TE.RUNNING
            task.status = TE.COMPLETED
            rows.update(task, ["status"])
            assert TaskExecution.objects.get(id=task.id).status == TE.COMPLETED


@pytest.mark.postgres
def test_held_writes_of_a_failed_block_are_never_sent(execution: FlowExecution) -> None:
    task = new_task(execution, "a")
    with pytest.raises(RuntimeError), rows.merging():
        rows.insert([task])
        raise RuntimeError("decided nothing")
    assert not TaskExecution.objects.filter(id=task.id).exists()


@pytest.mark.postgres
def test_a_merged_update_of_a_missing_row_fails(execution: FlowExecution) -> None:
    present, gone = new_task(execution, "a"), new_task(execution, "b")
    rows.insert([present])
    with pytest.raises(DatabaseError), rows.merging():
        rows.update(present, ["status"])
        rows.update(gone, ["status"])


@pytest.mark.postgres
def test_blocks_without_a_savepoint_keep_holding(execution: FlowExecution) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tasks = [new_task(execution, name) for name in ("a", "b")]
    with CaptureQueriesContext(connection) as queries, rows.merging():
        rows.insert(tasks[:1])
        with transaction.atomic(savepoint=False):  # e.g. a service function's own atomic
            rows.insert(tasks[1:])
    assert len(queries) == 1


@pytest.mark.postgres
def test_held_writes_travel_with_the_next_statement_whose_caller_gets_its_own_result(
    execution: FlowExecution,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    a, b = new_task(execution, "a"), new_task(execution, "b")
    rows.insert([a])
    with CaptureQueriesContext(connection) as queries, rows.merging():
        rows.insert([b])
        a.status = TE.RUNNING
        rows.update(a, ["status"])
        found = list(
            TaskExecution.objects.filter(flow_execution=execution)
            .order_by("task_name")
            .values_list("task_name", "status")
        )
        counted = TaskExecution.objects.filter(flow_execution=execution).update(output={"x": 1})
    assert found == [("a", TE.RUNNING), ("b", TE.QUEUED)]
    assert counted == 2  # the caller's own row count, not a held statement's
    assert len(queries) == 2  # INSERT; UPDATE; SELECT in one round trip, then the UPDATE
    assert queries[0]["sql"].startswith("INSERT") and queries[0]["sql"].count(";") == 2


@pytest.mark.postgres
def test_a_held_update_of_a_missing_row_fails_the_statement_it_travels_with(
    execution: FlowExecution,
) -> None:
    present, gone = new_task(execution, "a"), new_task(execution, "b")
    rows.insert([present])
    with pytest.raises(DatabaseError), transaction.atomic(), rows.merging():
        rows.update(gone, ["status"])
        TaskExecution.objects.filter(id=present.id).exists()


@pytest.mark.postgres
def test_latest_executions_rule(tenant) -> None:
    """PostgreSQL's one-statement form (``_latest_by_index``) picks what the rule picks
    (``_latest_by_order``): the highest index that is not deleted, per task, on several
    flow executions at once, with gaps, deleted heads and tasks that never ran."""
    flow = make_flow(tenant.organization, shape_definition({"a": [], "b": [], "c": []}))
    executions = [create_execution(flow) for _ in range(3)]
    shapes = [
        {"a": [TE.COMPLETED, TE.FAILED, TE.QUEUED], "b": [TE.COMPLETED]},
        {"a": [TE.COMPLETED, TE.DELETED], "c": [TE.DELETED]},
        {"b": [TE.FAILED, TE.FAILED, TE.FAILED, TE.RUNNING], "c": [TE.COMPLETED]},
    ]
    for execution, shape in zip(executions, shapes, strict=True):
        for name, statuses in shape.items():
            for idx, status in enumerate(statuses):
                gap = 2 if idx == len(statuses) - 1 and idx else 0  # a gap before the head
                TaskExecution.objects.create(
                    organization_id=execution.organization_id,
                    flow_execution=execution,
                    task_name=name,
                    task_execution_idx=idx + gap,
                    status=status,
                )
    wanted = {execution.id: {"a", "b", "c", "missing"} for execution in executions}

    def picked(found: dict) -> dict:
        return {
            pk: {name: (t.id, t.task_execution_idx) for name, t in tasks.items()}
            for pk, tasks in found.items()
            if tasks
        }

    assert picked(state._latest_by_index(wanted)) == picked(state._latest_by_order(wanted))
    assert picked(state._latest_by_order(wanted))[executions[1].id].keys() == {"a"}


def test_lock_flow_executions_rule(tenant, outsider) -> None:
    """The engine's lock statement takes exactly what the lookup family's queryset finds:
    the organization's flow executions that are not deleted, in id order."""
    flow = make_flow(tenant.organization, shape_definition({"a": []}))
    mine = [create_execution(flow) for _ in range(4)]
    FlowExecution.objects.filter(id=mine[1].id).update(status="deleted")
    theirs = create_execution(make_flow(outsider.organization, shape_definition({"a": []})))
    asked = [e.id for e in mine] + [theirs.id, uuid4(), "not-an-id"]
    with transaction.atomic():
        locked = state.lock_flow_executions(
            flow_execution_ids=asked, organization=tenant.organization
        )
    rule = flow_executions_of(organization=tenant.organization).filter(
        id__in=[pk for pk in asked if pk != "not-an-id"]
    )
    assert list(locked) == list(rule.order_by("id").values_list("id", flat=True))
    assert {pk: fields_of(e) for pk, e in locked.items()} == {e.id: fields_of(e) for e in rule}
