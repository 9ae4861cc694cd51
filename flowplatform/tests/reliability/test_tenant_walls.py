"""Row 2 — BOLA (broken object-level authorization): organization A's keys against
organization B's objects.

Every operation of the OpenAPI schema that names an object (a path id, or an id in the body)
is called with each kind of A's keys on B's object, and on an id that exists nowhere. The two
answers must be the same: 404 wherever the key kind may call the operation (403 where it may
not, for both alike: BFLA, row 3), never anything else, and B's rows never change. Figure:
requests tried, 2xx seen (0), non-404 seen among permitted calls (0).

The WebSocket half is end to end (real uvicorn): subscribing to B's flow with A's key is
closed with 4404, and A's subscriptions receive none of the events B's activity publishes
(while A's own activity does arrive, so the zero means something).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.walls import (
    BODY_TARGETED,
    Objects,
    body_for,
    make_objects,
    operations,
    snapshot,
)

UUIDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _missing(objects: Objects) -> Objects:
    """The same shape of target, every id unknown."""
    fresh = lambda: str(uuid.uuid4())  # noqa: E731
    return Objects(
        flow_id=fresh(),
        version=objects.version,
        flow_execution_id=fresh(),
        task_execution_id=fresh(),
        queued_task_execution_id=fresh(),
        task_output_id=fresh(),
        worker_id=objects.worker_id,
    )


def _call(client, operation, target: Objects):  # noqa: ANN001, ANN202
    body = body_for(operation, target)
    url = operation.url(target.ids)
    return (
        getattr(client, operation.method)(url, body, format="json")
        if body is not None
        else (getattr(client, operation.method)(url))
    )


def _shape(response) -> tuple[int, str | None, str | None]:  # noqa: ANN001
    """Status, error code and message with ids blanked: what may differ is nothing else."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = UUIDS.sub("<id>", error.get("message", "")) if error else None
    return response.status_code, error.get("code"), message


@pytest.mark.django_db
def test_every_object_route_answers_another_organization_like_a_missing_object(tenant, outsider):
    make_objects(tenant.organization, worker_id="mine")
    theirs = make_objects(outsider.organization, worker_id="theirs")
    missing = _missing(theirs)
    before = snapshot(outsider.organization)
    tried, permitted, statuses = 0, 0, Counter()
    mismatches, leaks = [], []
    targeted = [op for op in operations() if op.params or (op.method, op.path) in BODY_TARGETED]
    assert len(targeted) >= 18, [str(op) for op in targeted]
    for operation in targeted:
        for kind in ("user", "service"):
            client = tenant.client(kind)
            control = _call(client, operation, missing)
            answer = _call(client, operation, theirs)
            tried += 1
            statuses[answer.status_code] += 1
            if _shape(answer) != _shape(control):
                mismatches.append((str(operation), kind, _shape(control), _shape(answer)))
            if control.status_code == 404:
                permitted += 1
                if answer.status_code != 404:
                    leaks.append((str(operation), kind, answer.status_code, answer.content[:200]))
            elif control.status_code != 403:
                leaks.append((str(operation), kind, "control", control.status_code))
    two_xx = sum(n for status, n in statuses.items() if 200 <= status < 300)
    non_404 = sum(n for status, n in statuses.items() if status != 404)
    figure(
        2,
        "BOLA: A's keys on B's objects",
        operations=len(targeted),
        requests_tried=tried,
        permitted_calls=permitted,
        two_xx_seen=two_xx,
        non_404_seen_on_permitted=len(leaks),
        forbidden_by_key_kind_403=non_404,
    )
    assert leaks == []
    assert mismatches == []
    assert two_xx == 0
    assert snapshot(outsider.organization) == before


@pytest.mark.django_db
def test_list_filters_and_cursors_with_another_organization_s_ids_leak_nothing(tenant, outsider):
    mine = make_objects(tenant.organization, worker_id="mine")
    theirs = make_objects(outsider.organization, worker_id="theirs")
    client = tenant.client("user")
    filters = [
        ("/api/flow-executions", {"flow_id": theirs.flow_id}),
        ("/api/task-executions", {"flow_execution_id": theirs.flow_execution_id}),
        ("/api/task-outputs", {"flow_execution_id": theirs.flow_execution_id}),
        ("/api/task-outputs", {"flow_execution_id": theirs.flow_execution_id, "limit": 5}),
    ]
    cursors = [
        ("/api/flows", theirs.flow_id),
        ("/api/flow-executions", theirs.flow_execution_id),
        ("/api/task-executions", theirs.task_execution_id),
        ("/api/task-outputs", theirs.task_output_id),
        (f"/api/flows/{mine.flow_id}/versions", theirs.flow_id),
    ]
    rows_seen = 0
    for url, params in filters:
        response = client.get(url, params)
        assert response.status_code == 200, response.content
        body = b"".join(response.streaming_content) if response.streaming else response.content
        rows_seen += len(json.loads(body))
    for url, cursor in cursors:
        foreign = client.get(url, {"starting_after": cursor})
        unknown = client.get(url, {"starting_after": str(uuid.uuid4())})
        assert _shape(foreign) == _shape(unknown) == (400, "bad_request", _shape(unknown)[2])
    figure(
        2,
        "BOLA: list filters and cursors naming B's ids",
        requests=len(filters) + len(cursors),
        rows_of_b_seen=rows_seen,
    )
    assert rows_seen == 0


def _frames(ws, seconds: float) -> list[dict]:  # noqa: ANN001
    frames, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return frames


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_websockets_never_cross_organizations(e2e_server, tenant, outsider):
    mine = make_objects(tenant.organization, worker_id="mine")
    theirs = make_objects(outsider.organization, worker_id="theirs")
    server = e2e_server()
    ws_url = server.url.replace("http://", "ws://")
    # A's key on B's flow: accepted, then closed 4404 before anything is sent.
    closes = []
    for path in (f"/ws/flows/{theirs.flow_id}?token={tenant.user_key}",):
        for protocols in (None, ["bearer", tenant.service_key]):
            url = f"{ws_url}{path}" if protocols is None else f"{ws_url}/ws/flows/{theirs.flow_id}"
            with connect(url, subprotocols=protocols) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                closes.append(closed.value.rcvd.code)
    assert closes == [4404, 4404]

    own_flow = f"{ws_url}/ws/flows/{mine.flow_id}?token={tenant.user_key}"
    summaries = f"{ws_url}/ws/summaries?token={tenant.user_key}"
    with connect(own_flow) as flow_ws, connect(summaries) as summary_ws:
        assert json.loads(flow_ws.recv(timeout=5))["type"] == "subscribed"
        assert json.loads(summary_ws.recv(timeout=5))["type"] == "subscribed"
        with server.client(outsider.service_key) as b, server.client(tenant.service_key) as a:
            for n in range(10):  # B's activity: outputs, statuses, reports
                body = {"flow_execution_id": theirs.flow_execution_id, "task_name": "b"}
                assert b.post("/api/task-outputs", json={**body, "summary": n}).status_code < 300
                b.post(
                    f"/api/flow-executions/{theirs.flow_execution_id}/task-status",
                    json={"statuses": [{"task_name": "a", "status": f"s{n}"}]},
                ).raise_for_status()
            response = a.post(
                "/api/task-outputs",
                json={"flow_execution_id": mine.flow_execution_id, "task_name": "b", "summary": 1},
            )
            assert response.status_code == 201, response.text
        received = _frames(flow_ws, 2.0) + _frames(summary_ws, 0.5)
    events = [f for f in received if f.get("type") == "event"]
    foreign = [f for f in events if f["organization_id"] != str(tenant.organization.id)]
    own = [f for f in events if f["organization_id"] == str(tenant.organization.id)]
    # A replay from 0 on A's own flow returns A's events only, too.
    with connect(own_flow) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"action": "replay", "since": 0}))
        replayed = [f for f in _frames(ws, 2.0) if f.get("type") == "event"]
    foreign += [f for f in replayed if f["organization_id"] != str(tenant.organization.id)]
    figure(
        2,
        "BOLA over WebSockets: A subscribed while B worked",
        close_codes=closes,
        own_events_received=len(own),
        events_from_other_org=len(foreign),
    )
    assert own, "A's own event never arrived: the zero below would mean nothing"
    assert foreign == []
    assert httpx.get(f"{server.url}/healthz").status_code == 200
