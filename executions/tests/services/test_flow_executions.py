from __future__ import annotations

import uuid

import pytest

from executions.models import FlowExecution
from executions.services import flow_executions as services
from executions.services.flows import delete_flow, set_flow_definition
from executions.tests.factories import (
    TWO_STEPS,
    make_flow,
)
from flowplatform.exceptions import NotFound
from realtime.models import Event

pytestmark = pytest.mark.django_db


def test_create_pins_version_publishes_and_starts(organization, monkeypatch):
    flow = make_flow(organization)
    set_flow_definition(organization=organization, flow_id=flow.id, actor="u", definition=TWO_STEPS)
    started = []
    real_start = services.lifecycle.start_flow_execution

    def spy(*, execution, actor):  # noqa: ANN001, ANN202
        started.append((execution.id, execution.status, execution.flow_version, actor))
        return real_start(execution=execution, actor=actor)

    monkeypatch.setattr(services.lifecycle, "start_flow_execution", spy)
    execution = services.create_flow_execution(
        organization=organization, actor="u7", flow_id=flow.id, input={"k": [1]}
    )
    assert started == [(execution.id, "queued", 2, "u7")]
    # The engine started it: the root task of the pinned version (v2) is queued.
    assert execution.status == "running"
    assert list(execution.task_executions.values_list("task_name", "status")) == [
        ("first", "queued")
    ]
    stored = FlowExecution.objects.get(id=execution.id)
    assert (stored.flow_version, stored.input, stored.modified_by) == (2, {"k": [1]}, "u7")
    event = Event.objects.get(type="flow_execution.created")
    assert (event.flow_id, event.flow_execution_id, event.organization_id) == (
        flow.id,
        execution.id,
        organization.id,
    )
    assert event.data["status"] == "queued" and event.data["flow_version"] == 2


def test_create_for_missing_foreign_or_deleted_flow_is_not_found(organization, outsider):
    theirs = make_flow(outsider.organization)
    deleted = make_flow(organization)
    delete_flow(organization=organization, flow_id=deleted.id, actor="u")
    for flow_id in (theirs.id, deleted.id, uuid.uuid4()):
        with pytest.raises(NotFound):
            services.create_flow_execution(
                organization=organization, actor="u", flow_id=flow_id, input=None
            )
    assert not FlowExecution.objects.exists()
    assert not Event.objects.exists()


def test_delete_is_idempotent_and_scoped(organization, outsider):
    execution = services.create_flow_execution(
        organization=organization, actor="u", flow_id=make_flow(organization).id
    )
    theirs = services.create_flow_execution(
        organization=outsider.organization, actor="u", flow_id=make_flow(outsider.organization).id
    )
    with pytest.raises(NotFound):
        services.delete_flow_execution(
            organization=organization, flow_execution_id=theirs.id, actor="u"
        )
    services.delete_flow_execution(
        organization=organization, flow_execution_id=execution.id, actor="u"
    )
    services.delete_flow_execution(
        organization=organization, flow_execution_id=execution.id, actor="u"
    )
    assert FlowExecution.objects.get(id=execution.id).status == "deleted"
    assert FlowExecution.objects.get(id=theirs.id).status != "deleted"
    with pytest.raises(NotFound):
        services.cancel_flow_execution(
            organization=organization, flow_execution_id=execution.id, actor="u"
        )
