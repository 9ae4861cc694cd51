"""Row 5 — bad credentials: every operation answers 401 (in the envelope, with
``WWW-Authenticate``) to a request with no credential, a malformed one, an unknown, a revoked
key, a key of a deactivated user, and a key whose organization was deleted. (A valid key of
*another* organization is not a bad credential: its requests authenticate and the objects
404 — row 2.) A key in the URL query string (``?token=``, ``?api_key=``) is never read over
HTTP (401), only in a WebSocket handshake.
"""

from __future__ import annotations

from collections import Counter

import pytest
from rest_framework.test import APIClient

from flowplatform.models import Organization
from flowplatform.services import create_api_key, create_organization, revoke_api_key
from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.walls import body_for, make_objects, operations


def _headers_for_bad_credentials(tenant, doomed_key: str, inactive_key: str) -> dict:  # noqa: ANN001
    return {
        "missing": {},
        "malformed: Basic scheme": {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        "malformed: Bearer without key": {"HTTP_AUTHORIZATION": "Bearer"},
        "malformed: Bearer with two words": {"HTTP_AUTHORIZATION": "Bearer fpk_a fpk_b"},
        "malformed: X-API-Key not a key": {"HTTP_X_API_KEY": "not-a-key"},
        "unknown key": {"HTTP_AUTHORIZATION": "Bearer fpk_" + "x" * 40},
        "revoked user key": {"HTTP_AUTHORIZATION": f"Bearer {tenant.user_key}"},
        "revoked service key (X-API-Key)": {"HTTP_X_API_KEY": tenant.service_key},
        "key of a deleted organization": {"HTTP_AUTHORIZATION": f"Bearer {doomed_key}"},
        "key of a deactivated user": {"HTTP_AUTHORIZATION": f"Bearer {inactive_key}"},
    }


@pytest.mark.django_db
def test_every_operation_answers_401_to_every_kind_of_bad_credential(tenant):
    from flowplatform.services import get_or_create_user

    mine = make_objects(tenant.organization)
    doomed = create_organization(name="doomed")
    _, doomed_key = create_api_key(organization=doomed, kind="service")
    inactive = get_or_create_user(username="left-the-company")
    _, inactive_key = create_api_key(organization=tenant.organization, kind="user", user=inactive)
    inactive.is_active = False
    inactive.save()
    revoke_api_key(api_key=tenant.user_api_key)
    revoke_api_key(api_key=tenant.service_api_key)
    Organization.objects.filter(id=doomed.id).delete()  # its keys go with it

    cases = _headers_for_bad_credentials(tenant, doomed_key, inactive_key)
    seen: Counter[int] = Counter()
    wrong = []
    ops = operations()
    for name, headers in cases.items():
        client = APIClient()
        for operation in ops:
            url = operation.url(mine.ids)
            body = body_for(operation, mine)
            call = getattr(client, operation.method)
            response = (
                call(url, body, format="json", **headers)
                if body is not None
                else call(url, **headers)
            )
            seen[response.status_code] += 1
            ok = (
                response.status_code == 401
                and response.json()["error"]["code"] == "unauthorized"
                and response.get("WWW-Authenticate", "").startswith("Bearer")
            )
            if not ok:
                wrong.append((name, str(operation), response.status_code))
    figure(
        5,
        "bad credentials on every operation",
        kinds=len(cases),
        operations=len(ops),
        requests=sum(seen.values()),
        statuses_seen=dict(seen),
    )
    assert wrong == []


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["token", "api_key", "key", "access_token"])
def test_a_key_in_the_query_string_is_ignored_over_http(tenant, param):
    mine = make_objects(tenant.organization)
    client = APIClient()
    statuses = Counter()
    for operation in operations():
        url = f"{operation.url(mine.ids)}?{param}={tenant.user_key}"
        body = body_for(operation, mine)
        call = getattr(client, operation.method)
        response = call(url, body, format="json") if body is not None else call(url)
        statuses[response.status_code] += 1
    figure(5, f"HTTP key in ?{param}=", statuses_seen=dict(statuses))
    assert set(statuses) == {401}


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_key_in_the_query_string_works_for_a_websocket_handshake(tenant, flow):
    from asgiref.sync import sync_to_async
    from django.db import connections

    from realtime.tests.ws import expect_close, flow_path, subscribe

    comm, first = await subscribe(flow_path(flow.id, tenant.user_key))
    assert first["type"] == "subscribed"
    await comm.disconnect()
    await sync_to_async(revoke_api_key)(api_key=tenant.user_api_key)
    from realtime.tests.ws import communicator

    refused = communicator(flow_path(flow.id, tenant.user_key))
    connected, _ = await refused.connect(timeout=5)
    assert connected
    await expect_close(refused, 4401)
    await refused.disconnect()
    await sync_to_async(connections.close_all)()
