"""Two organizations with outputs: each sees only its own, on every route and filter."""

from __future__ import annotations

import orjson
import pytest

from outputs.models import TaskOutput
from outputs.tests.factories import make_output

pytestmark = pytest.mark.django_db

URL = "/api/task-outputs"


@pytest.fixture
def both(tenant, outsider, flow_execution, outsider_execution):  # noqa: ANN001, ANN201
    mine = [make_output(flow_execution, t, status="completed") for t in ("a", "b")]
    theirs = [make_output(outsider_execution, t, status="completed") for t in ("a", "b")]
    return mine, theirs


def listed(client, params=None) -> set[str]:  # noqa: ANN001
    response = client.get(URL, params or {})
    assert response.status_code == 200
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return {row["id"] for row in orjson.loads(raw)}


@pytest.mark.parametrize("kind", ["user", "service"])
def test_each_organization_lists_only_its_own(tenant, outsider, both, kind):
    mine, theirs = both
    assert listed(tenant.client(kind)) == {str(r.id) for r in mine}
    assert listed(outsider.client(kind)) == {str(r.id) for r in theirs}


def test_every_filter_stays_inside_the_organization(tenant, outsider, both, outsider_execution):
    mine, theirs = both
    client = tenant.client("service")
    assert listed(client, {"flow_execution_id": str(outsider_execution.id)}) == set()
    assert listed(client, {"task_name": "a"}) == {str(mine[0].id)}
    assert listed(client, {"status": "completed"}) == {str(r.id) for r in mine}
    assert listed(client, {"created_after": "2000-01-01T00:00:00Z"}) == {str(r.id) for r in mine}
    assert listed(client, {"created_before": "2999-01-01T00:00:00Z"}) == {str(r.id) for r in mine}
    assert listed(client, {"limit": "1000"}) == {str(r.id) for r in mine}
    assert listed(client, {"starting_after": str(mine[-1].id)}) <= {str(r.id) for r in mine}
    # A cursor of the other organization is refused, not used.
    assert client.get(URL, {"starting_after": str(theirs[0].id)}).status_code == 400


def test_retrieve_only_own(tenant, outsider, both):
    mine, theirs = both
    assert tenant.client().get(f"{URL}/{mine[0].id}").status_code == 200
    assert tenant.client().get(f"{URL}/{theirs[0].id}").status_code == 404
    assert outsider.client().get(f"{URL}/{theirs[0].id}").status_code == 200
    assert outsider.client().get(f"{URL}/{mine[0].id}").status_code == 404


def test_create_cannot_reach_the_other_organization(tenant, outsider, both, outsider_execution):
    _, theirs = both
    before = list(TaskOutput.objects.filter(pk=theirs[0].pk).values())
    response = tenant.client("service").post(
        URL,
        {"flow_execution_id": str(outsider_execution.id), "task_name": "a", "summary": "x"},
        format="json",
    )
    assert response.status_code == 404
    assert list(TaskOutput.objects.filter(pk=theirs[0].pk).values()) == before
    forged = {
        "flow_execution_id": str(outsider_execution.id),
        "organization_id": str(outsider.organization.id),
        "task_name": "a",
        "summary": "x",
    }
    assert tenant.client("service").post(URL, forged, format="json").status_code == 403
    assert list(TaskOutput.objects.filter(pk=theirs[0].pk).values()) == before
