"""The engine keeps outputs in step with task executions: one rule (``output_values``) applied
by one function (``sync_outputs``), and the status history's effect (``apply_task_statuses``)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import realtime.publisher
from executions.engine.events import collecting
from executions.engine.outputs import apply_task_statuses as apply_statuses
from executions.engine.outputs import sync_outputs
from outputs.models import TaskOutput
from outputs.representations import task_output_data
from outputs.tests.factories import make_flow_execution, make_output, make_task_execution
from realtime.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow_execution(tenant):  # noqa: ANN001, ANN201
    return make_flow_execution(tenant.organization)


@pytest.fixture
def pushed(monkeypatch):  # noqa: ANN001, ANN201
    """Batches pushed to the channel layer (after commit only)."""
    batches: list = []
    monkeypatch.setattr(realtime.publisher, "push", lambda messages: batches.append(messages))
    return batches


def sync(te, execution):  # noqa: ANN001, ANN201
    with collecting():
        (row,) = sync_outputs([te], flow_id=execution.flow_id, flow_version=execution.flow_version)
    return row


def apply_task_statuses(*, flow_execution, flow_id, statuses):  # noqa: ANN001, ANN201
    with collecting():
        apply_statuses(flow_execution_id=flow_execution.id, flow_id=flow_id, statuses=statuses)


def event_types() -> list[str]:
    return list(Event.objects.order_by("id").values_list("type", flat=True))


def no_lock_taken(queries) -> bool:  # noqa: ANN001
    return not any("FOR UPDATE" in q["sql"].upper() for q in queries)


# --- sync_outputs -----------------------------------------------------------------------------


def test_first_sync_creates_the_output_and_publishes_after_commit(
    flow_execution, pushed, django_capture_on_commit_callbacks
):
    te = make_task_execution(flow_execution, "a", status="queued")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        row = sync(te, flow_execution)
        assert pushed == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert [[m["event_type"] for m in batch] for batch in pushed] == [["task_output.created"]]

    stored = TaskOutput.objects.get()
    assert stored.pk == row.pk
    assert (stored.task_name, stored.status, stored.output, stored.summary) == (
        "a",
        "queued",
        None,
        None,
    )
    assert stored.organization_id == flow_execution.organization_id
    assert stored.flow_version == flow_execution.flow_version
    event = Event.objects.get()
    assert event.type == "task_output.created"
    assert (event.flow_id, event.flow_execution_id, event.task_name) == (
        flow_execution.flow_id,
        flow_execution.id,
        "a",
    )
    assert event.data == task_output_data(stored)


def test_output_follows_the_execution_through_its_states(
    flow_execution, django_capture_on_commit_callbacks
):
    te = make_task_execution(flow_execution, "a", status="queued")
    with django_capture_on_commit_callbacks(execute=True):
        first = sync(te, flow_execution)
    for status, output in [("running", None), ("completed", {"rows": 3})]:
        TaskExecutionQuery(te).set(status=status, output=output)
        with django_capture_on_commit_callbacks(execute=True):
            row = sync(te, flow_execution)
        assert row.pk == first.pk
        stored = TaskOutput.objects.get()
        assert (stored.status, stored.output) == (status, output)
    assert event_types() == ["task_output.created", "task_output.updated", "task_output.updated"]
    assert Event.objects.order_by("-id").first().data == task_output_data(TaskOutput.objects.get())


class TaskExecutionQuery:
    """Sets a fixture task execution's columns the way the engine would have left them."""

    def __init__(self, te) -> None:  # noqa: ANN001
        self.te = te

    def set(self, **values) -> None:  # noqa: ANN003
        type(self.te).objects.filter(pk=self.te.pk).update(**values)
        self.te.refresh_from_db()


@pytest.mark.parametrize(
    ("te_status", "expected"),
    [
        ("queued", "queued"),
        ("running", "running"),
        ("awaiting_input", "in_progress"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "failed"),
        ("stale", "stale"),
        ("deleted", "deleted"),
    ],
)
def test_status_mapping(flow_execution, te_status, expected):
    te = make_task_execution(flow_execution, "a", status=te_status)
    assert sync(te, flow_execution).status == expected
    assert TaskOutput.objects.get().status == expected


def test_edited_and_stale_flags_and_actor_are_copied(flow_execution):
    te = make_task_execution(
        flow_execution,
        "b",
        status="completed",
        output={"v": 2},
        edited_status="edited_not_reexecuted",
        stale_status="stale",
        modified_by="42",
    )
    row = sync(te, flow_execution)
    assert (row.edited_status, row.stale_status, row.status, row.modified_by) == (
        "edited_not_reexecuted",
        "stale",
        "stale",
        "42",
    )


def test_a_newer_execution_replaces_output_and_clears_staleness(flow_execution):
    old = make_task_execution(
        flow_execution, "a", status="completed", output={"v": 1}, stale_status="stale"
    )
    sync(old, flow_execution)
    assert TaskOutput.objects.get().status == "stale"
    new = make_task_execution(flow_execution, "a", idx=1, status="completed", output={"v": 2})
    row = sync(new, flow_execution)
    assert (row.status, row.stale_status, row.output) == ("completed", "consistent", {"v": 2})
    assert TaskOutput.objects.count() == 1


def test_sync_keeps_the_summary_and_tags_a_worker_set(flow_execution):
    make_output(flow_execution, "a", summary={"pages": 3}, tags=["x"], status="running")
    te = make_task_execution(flow_execution, "a", status="completed", output={"full": True})
    row = sync(te, flow_execution)
    stored = TaskOutput.objects.get()
    assert stored.pk == row.pk
    assert (stored.summary, stored.tags) == ({"pages": 3}, ["x"])
    assert (stored.status, stored.output) == ("completed", {"full": True})


def test_sync_without_changes_writes_and_publishes_nothing(flow_execution):
    te = make_task_execution(flow_execution, "a", status="completed", output=1)
    first = sync(te, flow_execution)
    with CaptureQueriesContext(connection) as queries:
        again = sync(te, flow_execution)
    assert len(queries) == 1  # the SELECT
    assert again.updated_at == first.updated_at
    assert event_types() == ["task_output.created"]


def test_sync_queries_are_few_and_take_no_lock(flow_execution):
    te = make_task_execution(flow_execution, "a", status="running")
    with transaction.atomic(), CaptureQueriesContext(connection) as created:
        sync(te, flow_execution)
    TaskExecutionQuery(te).set(status="completed", output=[1])
    with transaction.atomic(), CaptureQueriesContext(connection) as updated:
        sync(te, flow_execution)
    # create: SELECT, SAVEPOINT, INSERT, RELEASE, outbox INSERT
    assert len(created) <= 5, [q["sql"] for q in created]
    # update: SELECT, UPDATE, outbox INSERT
    assert len(updated) == 3, [q["sql"] for q in updated]
    assert no_lock_taken(created) and no_lock_taken(updated)


# --- staleness and soft deletion --------------------------------------------------------------


def test_an_execution_marked_stale_makes_its_output_stale(flow_execution):
    te = make_task_execution(flow_execution, "b", status="completed", output={"v": 1})
    sync(te, flow_execution)
    TaskExecutionQuery(te).set(stale_status="stale")
    row = sync(te, flow_execution)
    assert (row.status, row.stale_status, row.output) == ("stale", "stale", {"v": 1})
    assert event_types() == ["task_output.created", "task_output.updated"]


def test_soft_deleted_outputs_are_not_resurrected(flow_execution):
    row = make_output(flow_execution, "a", status="deleted")
    te = make_task_execution(flow_execution, "a", status="completed", stale_status="stale")
    sync(te, flow_execution)
    apply_task_statuses(
        flow_execution=flow_execution, flow_id=flow_execution.flow_id, statuses=[("a", "running")]
    )
    row.refresh_from_db()
    assert row.status == "deleted"
    assert not Event.objects.exists()


def test_a_task_queued_again_brings_its_deleted_output_back(flow_execution):
    row = make_output(flow_execution, "a", status="deleted")
    te = make_task_execution(flow_execution, "a", idx=1, status="queued")
    sync(te, flow_execution)
    row.refresh_from_db()
    assert row.status == "queued"


def test_a_reported_deleted_status_soft_deletes_the_output(flow_execution):
    row = make_output(flow_execution, "a", status="completed")
    apply_task_statuses(
        flow_execution=flow_execution, flow_id=flow_execution.flow_id, statuses=[("a", "deleted")]
    )
    row.refresh_from_db()
    assert row.status == "deleted"


def test_outputs_of_other_executions_are_untouched(flow_execution, tenant):
    other = make_flow_execution(tenant.organization)
    theirs = make_output(other, "a", status="completed")
    apply_task_statuses(
        flow_execution=flow_execution, flow_id=flow_execution.flow_id, statuses=[("a", "failed")]
    )
    theirs.refresh_from_db()
    assert theirs.status == "completed"


# --- apply_task_statuses --------------------------------------------------------------------


def test_apply_task_statuses_takes_the_last_valid_status_per_task(
    flow_execution, django_capture_on_commit_callbacks, pushed
):
    a = make_output(flow_execution, "a", status="queued")
    b = make_output(flow_execution, "b", status="queued")
    with django_capture_on_commit_callbacks(execute=True):
        apply_task_statuses(
            flow_execution=flow_execution,
            flow_id=flow_execution.flow_id,
            statuses=[
                ("a", "running"),
                ("b", "running"),
                ("a", "completed"),
                ("a", "almost done"),  # free text: history only
                ("a", None),
                ("c", "completed"),  # no output: skipped
                ("b", "failed"),
            ],
        )
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == ("completed", "failed")
    assert not TaskOutput.objects.filter(task_name="c").exists()
    events = list(Event.objects.order_by("id"))
    assert [(e.type, e.task_name) for e in events] == [
        ("task_output.updated", "a"),
        ("task_output.updated", "b"),
    ]
    assert events[0].data == task_output_data(a) and events[1].data == task_output_data(b)
    assert len(pushed) == 1  # one batch after commit


def test_apply_task_statuses_without_valid_or_new_status_changes_nothing(flow_execution):
    row = make_output(flow_execution, "a", status="running")
    with CaptureQueriesContext(connection) as queries:
        apply_task_statuses(
            flow_execution=flow_execution,
            flow_id=flow_execution.flow_id,
            statuses=[("a", "40%"), ("a", None), ("b", "nope")],
        )
    assert len(queries) == 0
    apply_task_statuses(
        flow_execution=flow_execution, flow_id=flow_execution.flow_id, statuses=[("a", "running")]
    )
    row.refresh_from_db()
    assert row.status == "running"
    assert not Event.objects.exists()


def test_apply_task_statuses_query_budget(flow_execution):
    for name in "abcd":
        make_output(flow_execution, name, status="queued")
    with CaptureQueriesContext(connection) as queries:
        apply_task_statuses(
            flow_execution=flow_execution,
            flow_id=flow_execution.flow_id,
            statuses=[("a", "running"), ("b", "running"), ("c", "completed"), ("d", "queued")],
        )
    # one SELECT, one UPDATE per distinct new status (2), one outbox insert
    assert len(queries) == 4, [q["sql"] for q in queries]
    assert no_lock_taken(queries)
    assert event_types() == ["task_output.updated"] * 3
