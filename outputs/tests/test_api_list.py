"""GET /api/task-outputs (seed 000 plus filters and the cursor)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from django.test import AsyncClient

from outputs import api as views
from outputs.representations import task_output_data
from outputs.tests.factories import make_flow_execution, make_output

pytestmark = pytest.mark.django_db

URL = "/api/task-outputs"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def body_of(response) -> list:  # noqa: ANN001
    assert response.status_code == 200, getattr(response, "content", b"")
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    data = orjson.loads(raw)
    assert isinstance(data, list)
    return data


def ids(rows: list) -> list[str]:
    return [row["id"] for row in rows]


def next_link(response) -> str | None:  # noqa: ANN001
    header = response.headers.get("Link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match, header
    return match.group(1)


@pytest.fixture
def sample(tenant, flow_execution):  # noqa: ANN001, ANN201
    """Nine outputs over three executions; created_at with ties (same instant, three ids)."""
    other = make_flow_execution(tenant.organization)
    third = make_flow_execution(tenant.organization)
    rows = []
    for i, (execution, task) in enumerate(
        [(e, t) for e in (flow_execution, other, third) for t in ("a", "b", "c")]
    ):
        rows.append(
            make_output(
                execution,
                task,
                created_at=T0 + timedelta(minutes=i // 3),  # three share each instant
                status=["completed", "failed", "running"][i % 3],
                tags=[task],
            )
        )
    return rows


def expected_order(rows) -> list[str]:  # noqa: ANN001
    return [str(r.id) for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


def test_lists_every_output_newest_first_with_id_tie_break(service_client, sample):
    response = service_client.get(URL)
    data = body_of(response)
    assert ids(data) == expected_order(sample)
    assert response["Content-Type"] == "application/json"
    assert "Link" not in response.headers


def test_rows_are_rendered_exactly_like_the_resource(user_client, sample):
    by_id = {row["id"]: row for row in body_of(user_client.get(URL))}
    for row in sample:
        row.refresh_from_db()
        assert by_id[str(row.id)] == task_output_data(row)


def test_without_limit_the_list_is_streamed_in_chunks(service_client, sample, monkeypatch):
    monkeypatch.setattr(views, "STREAM_CHUNK_SIZE", 2)
    response = service_client.get(URL)
    assert isinstance(response, StreamingHttpResponse)
    pieces = list(response.streaming_content)
    assert len(pieces) == 6  # five pieces of up to two rows, then "]"
    assert pieces[0].startswith(b"[{") and pieces[1].startswith(b",{") and pieces[-1] == b"]"
    assert ids(orjson.loads(b"".join(pieces))) == expected_order(sample)
    assert response.json_stream.chunks == 6


def test_empty_list_is_an_empty_array(service_client, tenant):
    response = service_client.get(URL)
    assert b"".join(response.streaming_content) == b"[]"


def test_soft_deleted_outputs_are_excluded(service_client, sample):
    sample[0].status = "deleted"
    sample[0].save()
    assert str(sample[0].id) not in ids(body_of(service_client.get(URL)))
    assert len(body_of(service_client.get(URL))) == 8


def test_served_over_asgi_it_streams_from_an_async_iterator(tenant, sample, monkeypatch):
    """Django buffers a sync iterator whole under ASGI; the ASGI path must be async."""
    monkeypatch.setattr(views, "STREAM_CHUNK_SIZE", 4)

    async def fetch():  # noqa: ANN202
        response = await AsyncClient().get(
            URL, headers={"Authorization": f"Bearer {tenant.service_key}"}
        )
        assert response.status_code == 200, response.content
        assert response.is_async
        return [piece async for piece in response.streaming_content]

    pieces = async_to_sync(fetch)()
    assert len(pieces) == 4  # 4 + 4 + 1 rows, then "]"
    assert ids(orjson.loads(b"".join(pieces))) == expected_order(sample)


# --- filters --------------------------------------------------------------------------------


def test_filter_by_flow_execution(service_client, sample, flow_execution):
    data = body_of(service_client.get(URL, {"flow_execution_id": str(flow_execution.id)}))
    assert ids(data) == expected_order(
        [r for r in sample if r.flow_execution_id == flow_execution.id]
    )
    assert len(data) == 3
    assert body_of(service_client.get(URL, {"flow_execution_id": str(uuid.uuid4())})) == []


def test_filter_by_task_name(service_client, sample):
    data = body_of(service_client.get(URL, {"task_name": "b"}))
    assert ids(data) == expected_order([r for r in sample if r.task_name == "b"])
    assert len(data) == 3
    assert body_of(service_client.get(URL, {"task_name": "B"})) == []  # case-sensitive


def test_filter_by_status(service_client, sample):
    data = body_of(service_client.get(URL, {"status": "failed"}))
    assert ids(data) == expected_order([r for r in sample if r.status == "failed"])
    assert {row["status"] for row in data} == {"failed"} and len(data) == 3
    assert body_of(service_client.get(URL, {"status": "stale"})) == []


def test_created_after_and_before_are_exclusive(service_client, sample):
    after = body_of(service_client.get(URL, {"created_after": "2026-03-01T12:01:00Z"}))
    assert ids(after) == expected_order(
        [r for r in sample if r.created_at > T0 + timedelta(minutes=1)]
    )
    assert len(after) == 3
    before = body_of(service_client.get(URL, {"created_before": "2026-03-01T12:01:00Z"}))
    assert ids(before) == expected_order([r for r in sample if r.created_at == T0])
    window = body_of(
        service_client.get(
            URL, {"created_after": "2026-03-01T11:59:59Z", "created_before": "2026-03-01T12:02:00Z"}
        )
    )
    assert len(window) == 6
    assert body_of(service_client.get(URL, {"created_after": "2026-03-01T12:02:00Z"})) == []


def test_created_after_accepts_offsets(service_client, sample):
    data = body_of(service_client.get(URL, {"created_after": "2026-03-01T13:01:30+01:00"}))
    assert len(data) == 3  # 12:01:30Z: only the 12:02 group


def test_filters_combine(service_client, sample, flow_execution):
    data = body_of(
        service_client.get(
            URL,
            {"flow_execution_id": str(flow_execution.id), "status": "completed", "task_name": "a"},
        )
    )
    assert ids(data) == [str(sample[0].id)]


# --- limit and cursor -----------------------------------------------------------------------


def walk(client, url: str) -> tuple[list[list[dict]], list[str]]:  # noqa: ANN001
    pages, links = [], []
    while url:
        response = client.get(url)
        pages.append(body_of(response))
        url = next_link(response)
        if url:
            links.append(url)
    return pages, links


@pytest.mark.parametrize("limit", [1, 2, 4, 8])
def test_walking_the_link_headers_gives_disjoint_ordered_complete_pages(
    service_client, sample, limit
):
    pages, links = walk(service_client, f"{URL}?limit={limit}")
    assert [len(p) for p in pages[:-1]] == [limit] * (len(pages) - 1)
    assert 1 <= len(pages[-1]) <= limit
    seen = [row["id"] for page in pages for row in page]
    assert len(seen) == len(set(seen))  # disjoint
    assert seen == expected_order(sample)  # complete and ordered
    for link in links:
        assert link.startswith("http://testserver/api/task-outputs?")


def test_no_link_when_the_limit_did_not_cut_the_list(service_client, sample):
    response = service_client.get(URL, {"limit": 9})
    assert len(body_of(response)) == 9
    assert next_link(response) is None
    response = service_client.get(URL, {"limit": 1000})
    assert "Link" not in response.headers


def test_link_keeps_the_filters(service_client, sample):
    pages, links = walk(service_client, f"{URL}?status=completed&limit=2")
    assert [len(p) for p in pages] == [2, 1]
    query = parse_qs(urlsplit(links[0]).query)
    assert query["status"] == ["completed"] and query["limit"] == ["2"]
    assert query["starting_after"] == [pages[0][-1]["id"]]
    assert [r["id"] for p in pages for r in p] == expected_order(
        [r for r in sample if r.status == "completed"]
    )


def test_starting_after_without_limit_streams_the_rest(service_client, sample):
    order = expected_order(sample)
    data = body_of(service_client.get(URL, {"starting_after": order[3]}))
    assert ids(data) == order[4:]
    assert body_of(service_client.get(URL, {"starting_after": order[-1]})) == []


def test_cursor_within_a_created_at_tie(service_client, sample):
    order = expected_order(sample)
    # order[0..2] share one created_at: the cursor must split the tie by id.
    data = body_of(service_client.get(URL, {"starting_after": order[0], "limit": 1}))
    assert ids(data) == [order[1]]


def test_a_deleted_output_still_works_as_a_cursor(service_client, sample):
    order = expected_order(sample)
    first_page = body_of(service_client.get(URL, {"limit": 3}))
    deleted = next(r for r in sample if str(r.id) == first_page[-1]["id"])
    deleted.status = "deleted"
    deleted.save()
    data = body_of(service_client.get(URL, {"starting_after": str(deleted.id)}))
    assert ids(data) == order[3:]


def test_unknown_or_foreign_starting_after_is_400(service_client, sample, outsider_execution):
    # Well-formed (so not a 422: the schema allows any uuid) but naming nothing in the list.
    foreign = make_output(outsider_execution, "a")
    answers = []
    for cursor in (uuid.uuid4(), foreign.id):
        response = service_client.get(URL, {"starting_after": str(cursor)})
        assert response.status_code == 400
        payload = response.json()
        assert payload["error"]["code"] == "bad_request"
        assert payload["error"]["details"] == [
            {
                "loc": ["query", "starting_after"],
                "msg": "No task output with this id.",
                "type": "unknown_cursor",
            }
        ]
        answers.append(payload["error"])
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"flow_execution_id": "nope"}, "flow_execution_id"),
        ({"starting_after": "nope"}, "starting_after"),
        ({"status": "done"}, "status"),
        ({"status": "deleted"}, "status"),
        ({"task_name": ""}, "task_name"),
        ({"task_name": "x" * 201}, "task_name"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01T00:00:00Z"}, "created_before"),
        ({"page": "2"}, "page"),
        ({"flow_execution": "0b7c5a3e-5f0c-4d5e-9a57-1c1b2f3e4d5a"}, "flow_execution"),
    ],
)
def test_invalid_query_parameters_are_422_before_streaming(service_client, sample, params, name):
    response = service_client.get(URL, params)
    assert response.status_code == 422
    assert not response.streaming
    payload = response.json()
    assert payload["error"]["code"] == "validation_error"
    assert ["query", name] in [d["loc"] for d in payload["error"]["details"]]


def test_missing_credentials_is_401(anon_client):
    response = anon_client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_unexpected_error_before_streaming_is_500_envelope(service_client, monkeypatch):
    def explode(**kwargs):  # noqa: ANN003, ANN202
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(views, "list_task_outputs", explode)
    service_client.raise_request_exception = False
    response = service_client.get(URL)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert b"secret" not in response.content
