"""publish(): outbox rows in the caller's transaction, one group message per group after commit."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime.groups import flow_group, summaries_group
from realtime.models import Event
from realtime.publisher import event_message, publish
from realtime.tests.factories import publish_committed, spec

pytestmark = pytest.mark.django_db


def _listen(*groups: str) -> dict[str, str]:
    layer = get_channel_layer()
    channels = {}
    for group in groups:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(group, channel)
        channels[group] = channel
    return channels


def _drain(channel: str) -> list[dict]:
    layer = get_channel_layer()
    messages = []
    queue = layer.channels.get(channel)
    while queue is not None and not queue.empty():
        messages.append(async_to_sync(layer.receive)(channel))
        queue = layer.channels.get(channel)
    return messages


def test_one_message_per_group_per_batch_after_commit(
    execution, django_capture_on_commit_callbacks
):
    flow_key, summary_key = (
        flow_group(execution.flow_id),
        summaries_group(execution.organization_id),
    )
    channels = _listen(flow_key, summary_key)
    specs = [
        spec(execution, "task_status.added"),
        spec(execution, "task_status.added"),
        spec(execution, "task_output.updated"),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        rows = publish(specs)
    assert [row.type for row in Event.objects.order_by("id")] == [s.type for s in specs]
    assert _drain(channels[flow_key]) == []  # nothing before commit

    for callback in callbacks:
        callback()
    [to_flow] = _drain(channels[flow_key])
    [to_summaries] = _drain(channels[summary_key])
    assert to_flow == {"type": "events.batch", "events": [event_message(r) for r in rows]}
    assert to_summaries == {"type": "events.batch", "events": [event_message(rows[2])]}


def test_event_message_is_what_clients_get(execution):
    [row] = publish_committed([spec(execution, "task_output.created", summary={"n": 1})])
    message = event_message(row)
    assert message == {
        "type": "event",
        "id": row.id,
        "event_type": "task_output.created",
        "organization_id": str(execution.organization_id),
        "flow_id": str(execution.flow_id),
        "flow_execution_id": str(execution.id),
        "task_name": "a",
        "created_at": message["created_at"],
        "data": row.data,
    }
    assert message["data"]["summary"] == {"n": 1}


def test_rolled_back_publish_leaves_nothing(execution, django_capture_on_commit_callbacks):
    channels = _listen(flow_group(execution.flow_id))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                publish([spec(execution, "task_execution.created")])
                raise RuntimeError("rolled back")
    assert callbacks == []
    assert not Event.objects.exists()
    assert _drain(next(iter(channels.values()))) == []


def test_empty_batch_is_a_no_op(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert publish([]) == []
    assert callbacks == []


def test_a_failing_layer_never_fails_the_transaction(
    execution, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    layer = get_channel_layer()

    async def broken(group, message):  # noqa: ANN001, ANN202
        raise ConnectionError("layer down")

    monkeypatch.setattr(layer, "group_send", broken)
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        with django_capture_on_commit_callbacks(execute=True):
            rows = publish_committed([spec(execution, "task_execution.created")])
    assert Event.objects.filter(id=rows[0].id).exists()
    assert any("replayable" in r.getMessage() or r.exc_info for r in caplog.records)
