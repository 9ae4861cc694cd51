from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, connections

from executions import dsl
from executions.examples import EXAMPLE_DEFINITION, EXAMPLE_FLOW_NAME, ensure_example_flow
from executions.models import Flow, FlowVersion
from executions.services.flows import (
    create_flow,
    delete_flow,
    loc_parts,
    problem_details,
    set_flow_definition,
    update_flow,
    validate_definition_of_flow,
    validate_flow_definition,
)
from executions.tests.factories import DIAMOND, TWO_STEPS, make_flow
from flowplatform.exceptions import BadRequest, NotFound

pytestmark = pytest.mark.django_db


def versions(flow: Flow) -> list[int]:
    return list(FlowVersion.objects.filter(flow=flow).values_list("version", flat=True))


# -- locations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loc", "parts"),
    [
        ("tasks", ["tasks"]),
        ("tasks[2].parameters.url", ["tasks", 2, "parameters", "url"]),
        ('tasks[0].parameters["a.b"][3].x-y', ["tasks", 0, "parameters", "a.b", 3, "x-y"]),
        ('["weird key"]', ["weird key"]),
        ("definition", ["definition"]),
        ("not a loc!", ["not a loc!"]),
    ],
)
def test_loc_parts(loc, parts):
    assert loc_parts(loc) == parts


def test_whole_document_problems_sit_at_the_definition():
    details = problem_details(
        [
            dsl.Problem("definition", "invalid YAML", "syntax_error"),
            dsl.Problem("definition", "unknown key 'definition'", "unknown_key"),
        ]
    )
    assert [d["loc"] for d in details] == [
        ["body", "definition"],
        ["body", "definition", "definition"],
    ]


def test_validate_flow_definition_reports_every_problem():
    with pytest.raises(BadRequest) as caught:
        validate_flow_definition(
            definition={"tasks": [{"name": "a"}, {"name": "a", "task_executor_name": "noop"}]}
        )
    assert [(d["loc"], d["type"]) for d in caught.value.details] == [
        (["body", "definition", "tasks", 0, "task_executor_name"], "missing"),
        (["body", "definition", "tasks", 1, "name"], "duplicate_name"),
    ]
    assert caught.value.message.startswith("Invalid flow definition: tasks[0].task_executor_name")
    assert "(and 1 more)" in caught.value.message


# -- create -----------------------------------------------------------------------------------


def test_create_flow_records_version_one(organization):
    flow = create_flow(organization=organization, actor="u1", display_name="F", definition=DIAMOND)
    assert (flow.version, flow.status, flow.modified_by, flow.deleted) == (1, "draft", "u1", False)
    version = FlowVersion.objects.get(flow=flow)
    assert (version.version, version.created_by, version.organization_id) == (
        1,
        "u1",
        organization.id,
    )
    assert version.definition == flow.definition == dsl.validate_definition(DIAMOND).to_dict()


def test_create_flow_with_invalid_definition_saves_nothing(organization):
    with pytest.raises(BadRequest):
        create_flow(
            organization=organization, actor="u1", display_name="F", definition={"tasks": []}
        )
    assert not Flow.objects.exists() and not FlowVersion.objects.exists()


# -- update and versions ------------------------------------------------------------------------


def test_update_fields_without_definition_keeps_the_version(organization):
    flow = make_flow(organization)
    updated = update_flow(
        organization=organization, flow_id=flow.id, actor="u2", display_name="G", tags=None
    )
    assert (updated.display_name, updated.version, updated.modified_by) == ("G", 1, "u2")
    assert versions(flow) == [1]


def test_update_without_changes_writes_nothing(organization):
    flow = make_flow(organization, actor="u1")
    updated = update_flow(
        organization=organization, flow_id=flow.id, actor="u2", display_name=flow.display_name
    )
    stored = Flow.objects.get(id=flow.id)
    assert (stored.modified_by, stored.updated_at) == ("u1", flow.updated_at)
    assert updated.modified_by == "u1"


def test_each_definition_change_is_the_next_version(organization):
    flow = make_flow(organization)
    second = set_flow_definition(
        organization=organization, flow_id=flow.id, actor="u", definition=TWO_STEPS
    )
    third = update_flow(organization=organization, flow_id=flow.id, actor="u", definition=DIAMOND)
    assert (second.version, third.version) == (2, 3)
    assert versions(flow) == [3, 2, 1]
    v2 = FlowVersion.objects.get(flow=flow, version=2)
    assert [t["name"] for t in v2.definition["tasks"]] == ["first", "second"]
    # Versions are immutable: v1 still holds the original definition.
    v1 = FlowVersion.objects.get(flow=flow, version=1)
    assert v1.definition == FlowVersion.objects.get(flow=flow, version=3).definition


def test_same_definition_in_another_spelling_is_no_change(organization):
    flow = make_flow(organization, definition=TWO_STEPS)
    yaml_text = (
        "tasks:\n  - {name: first, task_executor_name: noop, retries: {max_attempts: 1}}\n"
        "  - {name: second, task_executor_name: noop, depends_on: [first]}\n"
    )
    same = set_flow_definition(
        organization=organization, flow_id=flow.id, actor="u", definition=yaml_text
    )
    assert same.version == 1 and versions(flow) == [1]


@pytest.mark.parametrize(("before", "after"), [(True, 1), (1, 1.5), ({"a": 1}, {"a": 1.0})])
def test_json_values_python_thinks_equal_are_a_change(organization, before, after):
    def definition(value):
        return {"tasks": [{"name": "a", "task_executor_name": "noop", "parameters": {"v": value}}]}

    flow = make_flow(organization, definition=definition(before), tags=before)
    updated = update_flow(
        organization=organization,
        flow_id=flow.id,
        actor="u",
        definition=definition(after),
        tags=after,
    )
    stored = Flow.objects.get(id=flow.id)
    assert updated.version == stored.version == 2
    assert stored.definition["tasks"][0]["parameters"]["v"] == after
    assert type(stored.definition["tasks"][0]["parameters"]["v"]) is type(after)
    assert stored.tags == after


def test_invalid_definition_update_changes_nothing(organization):
    flow = make_flow(organization)
    with pytest.raises(BadRequest):
        update_flow(
            organization=organization,
            flow_id=flow.id,
            actor="u",
            display_name="renamed",
            definition="tasks: [",
        )
    stored = Flow.objects.get(id=flow.id)
    assert (stored.display_name, stored.version) == ("Flow", 1)
    assert versions(flow) == [1]


def test_update_of_foreign_or_deleted_flow_is_not_found(organization, outsider):
    theirs = make_flow(outsider.organization)
    deleted = make_flow(organization)
    delete_flow(organization=organization, flow_id=deleted.id, actor="u")
    for flow_id in (theirs.id, deleted.id, uuid.uuid4()):
        with pytest.raises(NotFound):
            update_flow(organization=organization, flow_id=flow_id, actor="u", display_name="x")
    assert Flow.objects.get(id=theirs.id).display_name == "Flow"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_definition_updates_get_distinct_versions(organization):
    flow = make_flow(organization)
    definitions = [
        {"tasks": [{"name": f"t{i}_{j}", "task_executor_name": "noop"} for j in range(i + 1)]}
        for i in range(6)
    ]
    barrier = threading.Barrier(len(definitions))
    errors: list[BaseException] = []

    def update(definition):
        try:
            barrier.wait()
            set_flow_definition(
                organization=organization, flow_id=flow.id, actor="u", definition=definition
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=update, args=(d,)) for d in definitions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(versions(flow)) == list(range(1, 8))
    assert Flow.objects.get(id=flow.id).version == 7
    assert connection.vendor == "postgresql"


# -- delete and validate ------------------------------------------------------------------------


def test_delete_is_soft_and_idempotent(organization):
    flow = make_flow(organization)
    delete_flow(organization=organization, flow_id=flow.id, actor="u9")
    delete_flow(organization=organization, flow_id=flow.id, actor="other")
    stored = Flow.objects.get(id=flow.id)
    assert (stored.deleted, stored.modified_by) == (True, "u9")
    assert versions(flow) == [1]


def test_delete_foreign_flow_is_not_found(organization, outsider):
    theirs = make_flow(outsider.organization)
    with pytest.raises(NotFound):
        delete_flow(organization=organization, flow_id=theirs.id, actor="u")
    assert Flow.objects.get(id=theirs.id).deleted is False


def test_validate_definition_of_flow_uses_the_stored_one_by_default(organization):
    flow = make_flow(organization, definition=TWO_STEPS)
    assert validate_definition_of_flow(organization=organization, flow_id=flow.id).names == (
        "first",
        "second",
    )
    checked = validate_definition_of_flow(
        organization=organization, flow_id=flow.id, definition=DIAMOND
    )
    assert checked.order == ("a", "b", "c", "d")
    assert Flow.objects.get(id=flow.id).version == 1


# -- example flow ---------------------------------------------------------------------------------


def test_example_flow_is_idempotent_and_valid(organization):
    first = ensure_example_flow(organization=organization, actor="boot")
    again = ensure_example_flow(organization=organization, actor="boot")
    assert first.id == again.id and again.version == 1
    assert Flow.objects.filter(display_name=EXAMPLE_FLOW_NAME).count() == 1
    definition = dsl.validate_definition(first.definition)
    assert 4 <= len(definition.tasks) <= 6
    executors = {task.task_executor_name for task in definition.tasks}
    assert executors <= {"transform", "validate", "python", "noop"}
    # A diamond: some task has two upstream tasks that share an ancestor.
    assert any(len(task.dependencies) >= 2 for task in definition.tasks)
    assert first.status == "published"


def test_example_flow_upgrades_an_outdated_definition(organization):
    flow = ensure_example_flow(organization=organization, actor="boot")
    set_flow_definition(organization=organization, flow_id=flow.id, actor="u", definition=DIAMOND)
    upgraded = ensure_example_flow(organization=organization, actor="boot")
    assert upgraded.id == flow.id and upgraded.version == 3
    assert upgraded.definition == dsl.validate_definition(EXAMPLE_DEFINITION).to_dict()


def test_example_flow_per_organization(organization, outsider):
    ours = ensure_example_flow(organization=organization, actor="boot")
    theirs = ensure_example_flow(organization=outsider.organization, actor="boot")
    assert ours.id != theirs.id
