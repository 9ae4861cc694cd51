"""The flow execution console: its page shows the execution's records read-only, and the
re-execute / re-execute stale / cancel actions call the engine as the staff user."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse
from django.utils import timezone

from executions.engine import lifecycle
from executions.models import FlowExecution, TaskStatus
from flowplatform.admin_utils import ACTION_ROW_LIMIT
from flowplatform.exceptions import Conflict
from outputs.models import TaskOutput

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:executions_flowexecution_changelist")


def _change_url(execution: FlowExecution) -> str:
    return reverse("admin:executions_flowexecution_change", args=[execution.pk])


def _messages(response) -> list[str]:  # noqa: ANN001
    return [str(m) for m in response.context["messages"]]


@dataclass
class EngineSpy:
    """Stands in for the engine: records calls, optionally refuses some executions."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse: set = field(default_factory=set)

    def _call(self, name: str, **kwargs: Any) -> FlowExecution:
        self.calls.append((name, kwargs))
        execution = kwargs["execution"]
        if execution.pk in self.refuse:
            raise Conflict("The flow execution is not in a state that allows this.")
        # What the engine records besides the status: who and when.
        FlowExecution.objects.filter(pk=execution.pk).update(
            modified_by=kwargs["actor"], updated_at=timezone.now()
        )
        return execution

    def cancel(self, *, execution: FlowExecution, actor: str) -> FlowExecution:
        return self._call("cancel", execution=execution, actor=actor)

    def reexecute(
        self, *, execution: FlowExecution, actor: str, only_stale: bool = False, **kw: Any
    ) -> FlowExecution:
        return self._call("reexecute", execution=execution, actor=actor, only_stale=only_stale)


@pytest.fixture
def spy(monkeypatch) -> EngineSpy:  # noqa: ANN001
    spy = EngineSpy()
    monkeypatch.setattr(lifecycle, "cancel_flow_execution", spy.cancel, raising=False)
    monkeypatch.setattr(lifecycle, "reexecute_flow_execution", spy.reexecute, raising=False)
    return spy


@pytest.fixture
def world(bulk_world):  # noqa: ANN001, ANN201
    return bulk_world(4)


@pytest.mark.parametrize(
    "action, expected",
    [
        ("reexecute", ("reexecute", {"only_stale": False})),
        ("reexecute_stale", ("reexecute", {"only_stale": True})),
        ("cancel", ("cancel", {})),
    ],
)
def test_actions_call_the_engine_as_the_staff_user(
    staff_client,
    staff_user,
    world,
    spy,
    action,
    expected,  # noqa: ANN001
):
    chosen = world.executions[:2]  # one of each organization
    assert {e.organization_id for e in chosen} == {o.pk for o in world.organizations}
    response = staff_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(e.pk) for e in chosen]},
        follow=True,
    )
    assert response.status_code == 200
    name, flags = expected
    assert [c[0] for c in spy.calls] == [name, name]
    for (_, kwargs), execution in zip(
        sorted(spy.calls, key=lambda c: str(c[1]["execution"].pk)),
        sorted(chosen, key=lambda e: str(e.pk)),
        strict=True,
    ):
        assert kwargs["execution"].pk == execution.pk
        assert kwargs["actor"] == str(staff_user.pk)
        for flag, value in flags.items():
            assert kwargs[flag] is value
        assert LogEntry.objects.filter(
            object_id=str(execution.pk), action_flag=CHANGE, user=staff_user
        ).exists()
    assert any(m.endswith(": 2 rows.") for m in _messages(response))


def test_engine_refusals_become_error_messages(staff_client, world, spy):  # noqa: ANN001
    refused, accepted = world.executions[:2]
    spy.refuse.add(refused.pk)
    response = staff_client.post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [str(refused.pk), str(accepted.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    messages = _messages(response)
    assert any(str(refused.pk) in m and "not in a state" in m for m in messages), messages
    assert "Cancellation requested: 1 row." in messages
    assert not LogEntry.objects.filter(object_id=str(refused.pk)).exists()
    assert LogEntry.objects.filter(object_id=str(accepted.pk)).exists()


def test_bulk_actions_refuse_oversized_selections(staff_client, bulk_world, spy):  # noqa: ANN001
    world = bulk_world(ACTION_ROW_LIMIT + 1)
    response = staff_client.post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [str(e.pk) for e in world.executions]},
        follow=True,
    )
    assert spy.calls == []
    assert any("at most" in m for m in _messages(response))


@pytest.mark.parametrize(
    "key, expected",
    [
        ("reexecute", ("reexecute", False)),
        ("reexecute-stale", ("reexecute", True)),
        ("cancel", ("cancel", None)),
    ],
)
def test_change_page_buttons(staff_client, staff_user, world, spy, key, expected):  # noqa: ANN001
    execution = world.executions[1]
    page = staff_client.get(_change_url(execution)).content.decode()
    url = reverse("admin:executions_flowexecution_operate", args=[execution.pk, key])
    assert f'action="{url}"' in page
    response = staff_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == _change_url(execution)
    name, only_stale = expected
    assert spy.calls[0][0] == name and spy.calls[0][1]["actor"] == str(staff_user.pk)
    assert spy.calls[0][1].get("only_stale") is only_stale
    assert LogEntry.objects.filter(object_id=str(execution.pk), user=staff_user).exists()


def test_change_page_button_refusal_is_a_message(staff_client, world, spy):  # noqa: ANN001
    execution = world.executions[0]
    spy.refuse.add(execution.pk)
    url = reverse("admin:executions_flowexecution_operate", args=[execution.pk, "cancel"])
    response = staff_client.post(url, follow=True)
    assert response.status_code == 200
    assert any("not in a state" in m for m in _messages(response))


def test_operations_need_post_and_a_known_operation(staff_client, world, spy):  # noqa: ANN001
    execution = world.executions[0]
    url = reverse("admin:executions_flowexecution_operate", args=[execution.pk, "cancel"])
    assert staff_client.get(url).status_code == 405
    bogus = reverse("admin:executions_flowexecution_operate", args=[execution.pk, "explode"])
    assert staff_client.post(bogus).status_code == 302
    for wrong in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        url = reverse("admin:executions_flowexecution_operate", args=[wrong, "cancel"])
        assert staff_client.post(url).status_code == 404
    assert spy.calls == []


def test_staff_without_change_permission_cannot_operate(client, django_user_model, world, spy):  # noqa: ANN001
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_flowexecution"))
    client.force_login(viewer)
    execution = world.executions[0]
    page = client.get(_change_url(execution)).content.decode()
    assert "operate/cancel" not in page
    url = reverse("admin:executions_flowexecution_operate", args=[execution.pk, "cancel"])
    client.post(url)
    client.post(CHANGELIST, {"action": "cancel", "_selected_action": [str(execution.pk)]})
    assert spy.calls == []


def test_page_shows_records_read_only_with_links(staff_client, world):  # noqa: ANN001
    execution = world.executions[0]
    output = TaskOutput.objects.get(flow_execution=execution)
    status = TaskStatus.objects.get(flow_execution=execution)
    response = staff_client.get(_change_url(execution))
    assert response.status_code == 200
    page = response.content.decode()
    # Pretty-printed, escaped JSON.
    assert json.dumps(execution.input, indent=2).replace('"', "&quot;") in page
    # Status as text in a badge.
    assert 'class="fp-badge fp-status-queued"' in page and "> queued</span>" in page
    # Links to the flow, the organization and every related record.
    task = execution.task_executions.get()
    for url in (
        reverse("admin:executions_flow_change", args=[execution.flow_id]),
        reverse("admin:flowplatform_organization_change", args=[execution.organization_id]),
        reverse("admin:executions_taskexecution_change", args=[task.pk]),
        reverse("admin:outputs_taskoutput_change", args=[output.pk]),
    ):
        assert url in page, url
    assert f"flow_execution_id={execution.pk}" in page  # its events
    assert status.status in page
    # Nothing editable: no save button, no form inputs for the records.
    assert 'name="_save"' not in page
    assert 'name="status"' not in page
    assert response.context["inline_admin_formsets"]


def test_flow_execution_cannot_be_changed_added_or_deleted(staff_client, world):  # noqa: ANN001
    execution = world.executions[0]
    assert staff_client.post(_change_url(execution), {"status": "completed"}).status_code == 403
    execution.refresh_from_db()
    assert execution.status == "queued"
    delete = reverse("admin:executions_flowexecution_delete", args=[execution.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert staff_client.get(reverse("admin:executions_flowexecution_add")).status_code == 403


def test_filters_and_search(staff_client, world):  # noqa: ANN001
    org = world.organizations[1]
    flow = world.flows[1]
    mine = {str(e.pk) for e in world.executions if e.organization_id == org.pk}

    def shown(**query: Any) -> set[str]:
        response = staff_client.get(CHANGELIST, query)
        assert response.status_code == 200, query
        return {str(e.pk) for e in response.context["cl"].result_list}

    assert shown(**{"organization__id__exact": str(org.pk)}) == mine
    assert shown(flow=str(flow.pk)) == mine
    assert shown(status__exact="queued") == {str(e.pk) for e in world.executions}
    assert shown(status__exact="failed") == set()
    assert shown(q=str(world.executions[2].pk)) == {str(world.executions[2].pk)}
    assert shown(q=flow.display_name) == mine
    assert shown(q="only") == {str(e.pk) for e in world.executions}  # a task name
    assert shown(q="no-such-task") == set()
    today = world.executions[0].created_at
    assert len(shown(created_at__year=today.year, created_at__month=today.month)) == 4
    # A malformed flow id is a bad filter, not a server error.
    assert staff_client.get(CHANGELIST, {"flow": "nope"}).status_code == 302
