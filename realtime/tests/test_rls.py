"""Consumers under PostgreSQL row-level security: with no bypass, the outbox and flows are
invisible unless scoped to an organization, and consumers scope every read to the caller's."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from flowplatform import tenancy
from realtime.models import Event
from realtime.tests.factories import publish_committed, spec
from realtime.tests.ws import flow_path, receive_events, subscribe, summaries_path

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
async def strict_rls():
    """The test's own queries get no bypass either (the suite's setup code normally has
    one, process-wide), and no connection opened with it survives."""
    if not tenancy.enabled():
        pytest.skip("row-level security is not enforced (set MIGRATION_DATABASE_URL)")
    tenancy.bypass_process(False)
    await sync_to_async(connections.close_all)()
    yield
    await sync_to_async(connections.close_all)()
    tenancy.bypass_process(True)


async def test_subscribe_and_replay_with_row_level_security_enforced(
    tenant, outsider, flow, execution, strict_rls
):
    def publish_as(organization_id, specs):  # noqa: ANN001, ANN202
        with tenancy.activate(organization_id):
            return publish_committed(specs)

    rows = await sync_to_async(publish_as)(
        tenant.organization.id,
        [spec(execution, "task_output.created"), spec(execution, "task_execution.updated")],
    )
    assert await sync_to_async(Event.objects.count)() == 0  # unscoped: nothing visible

    comm, subscribed = await subscribe(flow_path(flow.id, tenant.user_key))
    assert subscribed["last_event_id"] == rows[-1].id
    await comm.send_json_to({"action": "replay", "since": 0})
    assert [f["id"] for f in await receive_events(comm, 2)] == [r.id for r in rows]
    assert (await comm.receive_json_from())["type"] == "replayed"
    await comm.disconnect()

    summary, subscribed = await subscribe(summaries_path(tenant.user_key))
    assert subscribed["last_event_id"] == rows[0].id
    await summary.disconnect()
    # the other organization's stream is empty, not an error
    theirs, subscribed = await subscribe(summaries_path(outsider.user_key))
    assert subscribed["last_event_id"] == 0
    await theirs.disconnect()
