"""WebSocket consumers over the in-memory layer: authentication, authorization, live events."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from flowplatform.services import revoke_api_key
from realtime.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from realtime.models import Event
from realtime.publisher import EventSpec
from realtime.tests.factories import (
    ALL_EVENT_TYPES,
    SUMMARY_TYPES,
    apublish,
    make_execution,
    make_flow,
    spec,
)
from realtime.tests.ws import (
    communicator,
    expect_close,
    flow_path,
    receive_events,
    subscribe,
    summaries_path,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


async def _connect_expect_close(path: str, code: int, **kwargs) -> None:  # noqa: ANN003
    comm = communicator(path, **kwargs)
    connected, _ = await comm.connect(timeout=5)
    assert connected  # accepted first, so browsers can read the close code
    await expect_close(comm, code)
    await comm.disconnect()


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flow", "summaries"])
async def test_no_credentials_closes_4401(kind, flow):
    path = flow_path(flow.id) if kind == "flow" else summaries_path()
    await _connect_expect_close(path, CLOSE_UNAUTHENTICATED)


@pytest.mark.parametrize("token", ["fpk_not-a-real-key", "garbage", ""])
async def test_bad_token_closes_4401(token, flow):
    await _connect_expect_close(f"/ws/flows/{flow.id}?token={token}", CLOSE_UNAUTHENTICATED)


async def test_revoked_key_closes_4401(tenant, flow):
    await sync_to_async(revoke_api_key)(api_key=tenant.user_api_key)
    await _connect_expect_close(flow_path(flow.id, tenant.user_key), CLOSE_UNAUTHENTICATED)
    # the other, live key of the same organization still works
    comm, _ = await subscribe(flow_path(flow.id, tenant.service_key))
    await comm.disconnect()


async def test_foreign_flow_closes_4404(tenant, foreign_flow):
    await _connect_expect_close(flow_path(foreign_flow.id, tenant.user_key), CLOSE_NOT_FOUND)


async def test_unknown_and_deleted_flow_close_4404(tenant, flow):
    await _connect_expect_close(flow_path(uuid.uuid4(), tenant.user_key), CLOSE_NOT_FOUND)
    await sync_to_async(type(flow).objects.filter(id=flow.id).update)(deleted=True)
    await _connect_expect_close(flow_path(flow.id, tenant.user_key), CLOSE_NOT_FOUND)


async def test_unknown_ws_path_closes_4404(tenant):
    await _connect_expect_close(f"/ws/nothing?token={tenant.user_key}", CLOSE_NOT_FOUND)
    await _connect_expect_close(f"/ws/flows/not-a-uuid?token={tenant.user_key}", CLOSE_NOT_FOUND)


async def test_subscribed_reports_latest_event_id_of_the_flow(tenant, flow, execution):
    other_flow = await sync_to_async(make_flow)(tenant.organization, name="other")
    other_execution = await sync_to_async(make_execution)(other_flow)
    mine = await apublish([spec(execution, "task_execution.created")])
    await apublish([spec(other_execution, "task_execution.created")])  # a newer id elsewhere

    comm, subscribed = await subscribe(flow_path(flow.id, tenant.service_key))
    assert subscribed == {"type": "subscribed", "last_event_id": mine[0].id}
    assert await comm.receive_nothing()
    await comm.disconnect()

    empty = await sync_to_async(make_flow)(tenant.organization, name="empty")
    comm, subscribed = await subscribe(flow_path(empty.id, tenant.user_key))
    assert subscribed["last_event_id"] == 0
    await comm.disconnect()


async def test_token_in_subprotocol_pair(tenant, flow):
    comm = communicator(flow_path(flow.id), subprotocols=["bearer", tenant.user_key])
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected and subprotocol == "bearer"
    assert (await comm.receive_json_from())["type"] == "subscribed"
    await comm.disconnect()


async def test_token_in_dotted_subprotocol(tenant, flow):
    offered = f"bearer.{tenant.user_key}"
    comm = communicator(flow_path(flow.id), subprotocols=[offered])
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected and subprotocol == offered  # browsers need one of the offered values
    assert (await comm.receive_json_from())["type"] == "subscribed"
    await comm.disconnect()


async def test_bad_key_in_subprotocol_closes_4401_and_never_falls_back(tenant, flow):
    # a valid query token does not rescue an invalid bearer subprotocol
    comm = communicator(flow_path(flow.id, tenant.user_key), subprotocols=["bearer", "fpk_wrong"])
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected and subprotocol == "bearer"
    await expect_close(comm, CLOSE_UNAUTHENTICATED)
    await _connect_expect_close(flow_path(flow.id), CLOSE_UNAUTHENTICATED, subprotocols=["bearer"])


def _session_cookie(user) -> bytes:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_session_cookie_with_trusted_origin(tenant, flow):
    cookie = await sync_to_async(_session_cookie)(tenant.user)
    headers = [(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")]
    comm, subscribed = await subscribe(flow_path(flow.id), headers=headers)
    assert subscribed["type"] == "subscribed"
    await comm.disconnect()


@pytest.mark.parametrize("origin", [b"https://evil.example", None])
async def test_session_cookie_from_untrusted_or_missing_origin_closes_4401(origin, tenant, flow):
    cookie = await sync_to_async(_session_cookie)(tenant.user)
    headers = [(b"cookie", cookie)] + ([(b"origin", origin)] if origin else [])
    await _connect_expect_close(flow_path(flow.id), CLOSE_UNAUTHENTICATED, headers=headers)


async def test_session_cookie_origin_from_csrf_trusted_origins(tenant, flow, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.flows.example"]
    cookie = await sync_to_async(_session_cookie)(tenant.user)
    headers = [(b"cookie", cookie), (b"origin", b"https://app.flows.example")]
    comm, _ = await subscribe(flow_path(flow.id), headers=headers)
    await comm.disconnect()


async def test_invalid_session_cookie_closes_4401(flow):
    headers = [(b"cookie", b"sessionid=nonsense"), (b"origin", b"http://localhost")]
    await _connect_expect_close(flow_path(flow.id), CLOSE_UNAUTHENTICATED, headers=headers)


# -- live events -------------------------------------------------------------------------------


async def test_every_event_type_reaches_flow_subscribers(tenant, flow, execution):
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    specs = [spec(execution, event_type) for event_type in ALL_EVENT_TYPES]
    rows = await apublish(specs)

    frames = await receive_events(comm, len(ALL_EVENT_TYPES))
    assert [f["event_type"] for f in frames] == ALL_EVENT_TYPES
    assert [f["id"] for f in frames] == [row.id for row in rows]
    for frame, sent in zip(frames, specs, strict=True):
        assert frame["data"] == sent.data
        assert frame["flow_id"] == str(flow.id)
        assert frame["flow_execution_id"] == str(execution.id)
        assert frame["organization_id"] == str(tenant.organization.id)
        assert frame["task_name"] == "a"
        assert frame["created_at"].endswith("Z")
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_summary_subscribers_get_only_task_output_events(tenant, flow, execution):
    comm, _ = await subscribe(summaries_path(tenant.user_key))
    await apublish([spec(execution, event_type) for event_type in ALL_EVENT_TYPES])

    frames = await receive_events(comm, len(SUMMARY_TYPES))
    assert [f["event_type"] for f in frames] == SUMMARY_TYPES
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_one_frame_per_event_each_type_published_separately(tenant, flow, execution):
    comm, _ = await subscribe(flow_path(flow.id, tenant.service_key))
    for event_type in ALL_EVENT_TYPES:
        [row] = await apublish([spec(execution, event_type)])
        [frame] = await receive_events(comm, 1)
        assert (frame["event_type"], frame["id"]) == (event_type, row.id)
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_rolled_back_changes_are_never_sent(tenant, flow, execution):
    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))

    def publish_then_fail() -> None:
        from django.db import transaction

        from realtime.publisher import publish

        with transaction.atomic():
            publish([spec(execution, "task_execution.created")])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await sync_to_async(publish_then_fail)()
    assert await comm.receive_nothing()
    assert await sync_to_async(Event.objects.count)() == 0
    await comm.disconnect()


async def test_other_organizations_events_are_never_received(tenant, outsider, flow, execution):
    their_flow = await sync_to_async(make_flow)(outsider.organization, name="theirs")
    their_execution = await sync_to_async(make_execution)(their_flow)
    other_flow = await sync_to_async(make_flow)(tenant.organization, name="sibling")
    sibling_execution = await sync_to_async(make_execution)(other_flow)
    flow_comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    summary_comm, _ = await subscribe(summaries_path(tenant.user_key))

    await apublish([spec(their_execution, t) for t in ALL_EVENT_TYPES])
    await apublish([spec(sibling_execution, "task_execution.created")])

    assert await flow_comm.receive_nothing(
        timeout=0.3
    )  # neither the outsider's nor a sibling flow's
    assert await summary_comm.receive_nothing(timeout=0.3)  # nor the outsider's task outputs

    # a forged live message naming another organization is dropped too
    forged = EventSpec("task_output.created", outsider.organization.id, flow.id, execution.id)
    await apublish([forged])
    assert await flow_comm.receive_nothing()
    await flow_comm.disconnect()
    await summary_comm.disconnect()


async def test_disconnected_clients_leave_the_group(tenant, flow, execution):
    from channels.layers import get_channel_layer

    from realtime.groups import flow_group

    comm, _ = await subscribe(flow_path(flow.id, tenant.user_key))
    layer = get_channel_layer()
    assert layer.groups[flow_group(flow.id)]
    await comm.disconnect()
    assert flow_group(flow.id) not in layer.groups
