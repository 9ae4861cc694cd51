"""Row 6 — resource limits.

- Bodies over ``MAX_REQUEST_BODY_BYTES`` (``DATA_UPLOAD_MAX_MEMORY_SIZE``; 10 MiB by default,
  64 KiB in this test) → 413 in the envelope on every route, under uvicorn, with or without a
  ``Content-Length`` (``flowplatform.bodylimit`` refuses them before Django reads them);
- ``limit`` above the maximum (1000) on every list → 422; a task-status batch over 100 items,
  a claim over 50 tasks or 100 executors → 422;
- nothing unbounded is built in memory. Per list endpoint:

  | endpoint | bound |
  |---|---|
  | GET /api/flows, /api/flows/{id}/versions | page of ``limit`` (default 100, max 1000) |
  | GET /api/flow-executions, /api/task-executions | page of ``limit`` (default 100, max 1000) |
  | GET /api/task-outputs | without ``limit``: streamed from a server-side cursor in chunks of
    1000 rows (seed 000: the whole list); with ``limit``: one page (max 1000) |
  | GET /api/flow-executions/{id} | one execution and one output per task of its flow |
  | GET /api/task-executors | the built-in catalogue (constant) |
  | POST bodies | ``MAX_REQUEST_BODY_BYTES``; YAML expands to at most 250,000 values |
"""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
from django.http import StreamingHttpResponse

from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.walls import make_objects, operations

LIMIT = 64 * 1024
LISTS = [
    "/api/flows",
    "/api/flow-executions",
    "/api/task-executions",
    "/api/task-outputs",
    "/api/flows/{flow_id}/versions",
]


def _oversized(size: int) -> bytes:
    filler = "x" * (size - 20)
    return json.dumps({"summary": filler}).encode()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_oversized_bodies_are_413_on_every_route_under_uvicorn(e2e_server, tenant):
    mine = make_objects(tenant.organization)
    server = e2e_server(MAX_REQUEST_BODY_BYTES=str(LIMIT))
    big = _oversized(LIMIT + 1024)
    assert len(big) > LIMIT
    statuses: Counter[int] = Counter()
    wrong = []
    paths = {op.url(mine.ids) for op in operations()} | {"/api/nowhere", "/admin/login/"}
    with server.client(tenant.service_key) as client:
        for url in sorted(paths):
            for method in ("POST", "PUT", "PATCH", "DELETE", "GET"):
                for chunked in (False, True):
                    content = iter([big[i : i + 8192] for i in range(0, len(big), 8192)])
                    response = client.request(
                        method,
                        url,
                        content=content if chunked else big,
                        headers={"Content-Type": "application/json"},
                    )
                    statuses[response.status_code] += 1
                    body = response.json()
                    if (
                        response.status_code != 413
                        or body["error"]["code"] != "payload_too_large"
                        or not response.headers.get("X-Request-ID")
                    ):
                        wrong.append((method, url, chunked, response.status_code))
        # Just under the limit the request reaches the view (here: a validation answer).
        under = json.dumps(
            {"flow_execution_id": mine.flow_execution_id, "task_name": "a", "summary": "y"}
        ).encode()
        under += b" " * (LIMIT - len(under))
        accepted = client.post(
            "/api/task-outputs", content=under, headers={"Content-Type": "application/json"}
        )
        # A large body trickled in without a length is cut off at the limit, not read to the end.
        sent = 0

        def endless():  # noqa: ANN202
            nonlocal sent
            while sent < 50 * 1024 * 1024:
                sent += 65536
                yield b" " * 65536

        try:
            endless_response = client.post(
                "/api/task-outputs", content=endless(), headers={"Content-Type": "application/json"}
            )
            endless_status = endless_response.status_code
        except httpx.HTTPError:  # the server may close while we still write
            endless_status = "closed"
    figure(
        6,
        f"oversized bodies (limit {LIMIT} bytes) under uvicorn",
        requests=sum(statuses.values()),
        statuses_seen=dict(statuses),
        just_under_limit=accepted.status_code,
        endless_body_bytes_sent_before_cut=sent,
        endless_body_answer=endless_status,
    )
    assert wrong == []
    assert accepted.status_code in (200, 201), accepted.text
    assert sent < 50 * 1024 * 1024
    assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.django_db
def test_list_limits_and_batch_sizes_above_their_maximum_are_422(tenant):
    mine = make_objects(tenant.organization)
    user, service = tenant.client("user"), tenant.client("service")
    answers: list[tuple[str, int, list]] = []
    for template in LISTS:
        url = template.format(flow_id=mine.flow_id)
        response = user.get(url, {"limit": 1001})
        answers.append((url, response.status_code, response.json()["error"]["details"][0]["loc"]))
    statuses = [{"task_name": "a", "status": str(n)} for n in range(101)]
    batch = service.post(
        f"/api/flow-executions/{mine.flow_execution_id}/task-status",
        {"statuses": statuses},
        format="json",
    )
    answers.append(
        ("task-status 101 items", batch.status_code, batch.json()["error"]["details"][0]["loc"])
    )
    claims = [
        {"worker_id": "w", "executors": ["noop"], "limit": 51},
        {"worker_id": "w", "executors": [f"e{n}" for n in range(101)]},
        {"worker_id": "w", "executors": ["noop"], "wait_seconds": 31},
    ]
    for body in claims:
        response = service.post("/api/task-executions/claim", body, format="json")
        answers.append(
            ("claim", response.status_code, response.json()["error"]["details"][0]["loc"])
        )
    figure(6, "limits above their maximum", requests=len(answers), statuses={a[1] for a in answers})
    assert all(status == 422 for _, status, _ in answers), answers
    assert [loc[0] for _, _, loc in answers] == ["query"] * len(LISTS) + ["body"] * 4
    # Exactly at the maximum is fine.
    ok = service.post(
        f"/api/flow-executions/{mine.flow_execution_id}/task-status",
        {"statuses": statuses[:100]},
        format="json",
    )
    assert ok.status_code == 200 and len(ok.json()) == 100


@pytest.mark.django_db
def test_lists_are_paged_by_default_or_streamed(tenant):
    from executions.models import FlowExecution

    mine = make_objects(tenant.organization)
    flow_execution = FlowExecution.objects.get(id=mine.flow_execution_id)
    FlowExecution.objects.bulk_create(
        FlowExecution(organization=tenant.organization, flow_id=mine.flow_id, flow_version=1)
        for _ in range(120)
    )
    client = tenant.client("user")
    paged = client.get("/api/flow-executions")
    assert len(paged.json()) == 100 and 'rel="next"' in paged["Link"]
    streamed = client.get("/api/task-outputs")
    assert isinstance(streamed, StreamingHttpResponse)
    rows = json.loads(b"".join(streamed.streaming_content))
    assert {r["flow_execution_id"] for r in rows} >= {str(flow_execution.id)}
    figure(
        6,
        "list bounds",
        flow_executions_default_page=len(paged.json()),
        task_outputs_without_limit="streamed",
    )
