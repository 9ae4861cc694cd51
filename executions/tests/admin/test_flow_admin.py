"""Flows in the admin: created and edited through the flows service, definitions validated
with the DSL, a changed definition makes a new version, status changes by actions."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse

from executions.models import Flow, FlowVersion
from executions.services import flows

pytestmark = pytest.mark.django_db

YAML = """
tasks:
  - name: fetch
    task_executor_name: noop
  - name: report
    task_executor_name: noop
    depends_on: [fetch]
"""


@pytest.fixture
def flow(tenant):  # noqa: ANN001, ANN201
    return flows.create_flow(
        organization=tenant.organization,
        actor="test",
        display_name="nightly",
        definition={"tasks": [{"name": "a", "task_executor_name": "noop"}]},
    )


def _form(flow: Flow, **changes) -> dict:  # noqa: ANN003
    data = {
        "display_name": flow.display_name,
        "description": flow.description,
        "tags": json.dumps(flow.tags),
        "definition": json.dumps(flow.definition),
    }
    return {**data, **changes}


def test_add_flow_goes_through_the_service(staff_client, tenant, staff_user):  # noqa: ANN001
    response = staff_client.post(
        reverse("admin:executions_flow_add"),
        {
            "organization": tenant.organization.pk,
            "display_name": "etl",
            "description": "",
            "tags": '["daily"]',
            "definition": YAML,
        },
        follow=True,
    )
    assert response.status_code == 200
    flow = Flow.objects.get(display_name="etl")
    assert flow.organization == tenant.organization
    assert flow.modified_by == str(staff_user.pk)
    assert flow.tags == ["daily"]
    assert [t["name"] for t in flow.definition["tasks"]] == ["fetch", "report"]
    assert FlowVersion.objects.filter(flow=flow, version=1).exists()
    assert LogEntry.objects.get(object_id=str(flow.pk)).action_flag == ADDITION


def test_change_page_pretty_prints_the_definition(staff_client, flow):  # noqa: ANN001
    flow.refresh_from_db()  # the stored key order (PostgreSQL's jsonb sorts keys)
    response = staff_client.get(reverse("admin:executions_flow_change", args=[flow.pk]))
    assert response.status_code == 200
    assert json.dumps(flow.definition, indent=2).replace('"', "&quot;") in response.content.decode()


def test_changed_definition_creates_a_new_version(staff_client, flow, staff_user):  # noqa: ANN001
    url = reverse("admin:executions_flow_change", args=[flow.pk])
    response = staff_client.post(url, _form(flow, definition=YAML), follow=True)
    assert response.status_code == 200
    flow.refresh_from_db()
    assert flow.version == 2
    assert flow.modified_by == str(staff_user.pk)
    assert list(flow.versions.values_list("version", flat=True)) == [2, 1]
    assert FlowVersion.objects.get(flow=flow, version=1).definition["tasks"][0]["name"] == "a"
    assert LogEntry.objects.filter(object_id=str(flow.pk), action_flag=CHANGE).exists()


def test_unchanged_definition_keeps_the_version(staff_client, flow):  # noqa: ANN001
    url = reverse("admin:executions_flow_change", args=[flow.pk])
    staff_client.post(url, _form(flow, display_name="renamed"), follow=True)
    flow.refresh_from_db()
    assert (flow.display_name, flow.version, flow.versions.count()) == ("renamed", 1, 1)


def test_invalid_definition_lists_every_problem_and_saves_nothing(staff_client, flow):  # noqa: ANN001
    bad = {
        "tasks": [
            {"name": "a", "task_executor_name": "noop", "depends_on": ["missing"]},
            {"name": "a", "task_executor_name": "noop"},
        ]
    }
    url = reverse("admin:executions_flow_change", args=[flow.pk])
    response = staff_client.post(url, _form(flow, definition=json.dumps(bad)))
    assert response.status_code == 200  # the form again, with errors
    errors = response.context["adminform"].form.errors["definition"]
    assert len(errors) >= 2
    assert any("missing" in e for e in errors) and any("a" in e for e in errors)
    flow.refresh_from_db()
    assert flow.version == 1


def test_unreadable_definition_is_a_form_error(staff_client, flow):  # noqa: ANN001
    url = reverse("admin:executions_flow_change", args=[flow.pk])
    response = staff_client.post(url, _form(flow, definition="tasks: [unclosed"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["definition"]


def test_status_is_read_only_and_changes_by_actions(staff_client, flow, staff_user):  # noqa: ANN001
    url = reverse("admin:executions_flow_change", args=[flow.pk])
    staff_client.post(url, _form(flow, status="published"), follow=True)
    flow.refresh_from_db()
    assert flow.status == "draft"
    response = staff_client.post(
        reverse("admin:executions_flow_changelist"),
        {"action": "publish", "_selected_action": [str(flow.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    flow.refresh_from_db()
    assert flow.status == "published" and flow.modified_by == str(staff_user.pk)
    assert LogEntry.objects.filter(object_id=str(flow.pk), action_flag=CHANGE).exists()


def test_soft_delete_action_and_editing_a_deleted_flow_is_a_message(staff_client, flow):  # noqa: ANN001
    staff_client.post(
        reverse("admin:executions_flow_changelist"),
        {"action": "soft_delete", "_selected_action": [str(flow.pk)]},
    )
    flow.refresh_from_db()
    assert flow.deleted
    url = reverse("admin:executions_flow_change", args=[flow.pk])
    response = staff_client.post(url, _form(flow, display_name="again"), follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("not found" in m.lower() for m in messages), messages
    flow.refresh_from_db()
    assert flow.display_name == "nightly"
