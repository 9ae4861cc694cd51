"""The lean path of worker reports (``executions.api.report_path``): it answers the usual
report exactly as the DRF view does, passes everything else on to it, and under ASGI
decides reports without a thread of the request's own."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest
from django.test import AsyncClient, override_settings

from executions.api import report_path
from executions.api.task_executions import TaskExecutionsView
from executions.enums import TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.api.test_task_executions import body as report
from executions.tests.engine.factories import DIAMOND, latest, shape_definition, start
from flowplatform.services import create_api_key

TE = TaskExecutionStatus
URL = "/api/task-executions"
pytestmark = pytest.mark.django_db
# Headers both paths set; X-Request-ID differs per request by design.
COMPARED_HEADERS = (
    "Content-Type",
    "Allow",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "WWW-Authenticate",
    "Vary",
)


@pytest.fixture
def drf_post_fails(monkeypatch):
    """Makes the DRF view's POST fail: a request it answers is one the lean path left."""

    def refuse(self, request):  # noqa: ANN001
        raise AssertionError("the DRF view answered a report the lean path should answer")

    monkeypatch.setattr(TaskExecutionsView, "post", refuse)


def post(client, data, **extra):  # noqa: ANN001, ANN003
    raw = data if isinstance(data, bytes | str) else json.dumps(data)
    return client.post(
        URL, raw, content_type=extra.pop("content_type", "application/json"), **extra
    )


def shape(response):  # noqa: ANN001
    """What a client sees of a response, less the fields that differ per record."""
    body = response.json()
    if isinstance(body, dict) and "request_id" in body:
        assert body.pop("request_id") == response["X-Request-ID"]
    volatile_fields = ("id", "flow_execution_id", "created_at", "updated_at", "started_at")
    for volatile in (*volatile_fields, "completed_at", "lease_expires_at"):
        if isinstance(body, dict):
            body.pop(volatile, None)
    if isinstance(body, dict) and "claimed" in body:
        body["claimed"] = len(body["claimed"])  # which: whatever the queue held first
    headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
    return response.status_code, body, headers


def test_usual_reports_are_answered_without_the_drf_view(service_client, tenant, drf_post_fails):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    queued = latest(execution, "a")
    updated = post(service_client, report(execution))
    assert updated.status_code == 200, updated.content
    assert updated["Allow"] == "GET, POST, PUT, HEAD, OPTIONS"
    assert updated["X-Request-ID"]
    assert updated.json()["id"] == str(queued.id)
    assert TaskExecution.objects.get(id=queued.id).status == TE.COMPLETED
    # The engine reacted in the same decision: a's downstream is queued.
    assert latest(execution, "b").status == TE.QUEUED
    created = post(service_client, report(execution, task_name="b", task_execution_idx=3))
    assert created.status_code == 201, created.content
    assert latest(execution, "b").id == TaskExecution.objects.get(id=created.json()["id"]).id


def _both_paths(client, execution_factory, make):  # noqa: ANN001
    """The same request against two identical flow executions, once per path."""
    seen = []
    for lean in (True, False):
        execution = execution_factory()
        with override_settings(FLOWPLATFORM_LEAN_REPORTS=lean):
            seen.append(shape(make(client, execution)))
    return seen


CASES = {
    "created": lambda c, e: post(c, report(e, task_execution_idx=4)),
    "updated, engine reacts": lambda c, e: post(c, report(e)),
    "repeated terminal report": lambda c, e: (post(c, report(e)), post(c, report(e)))[1],
    "changed terminal report": lambda c, e: (
        post(c, report(e)),
        post(c, report(e, output={"v": 2})),
    )[1],
    "unknown task": lambda c, e: post(c, report(e, task_name="nope")),
    "invalid status": lambda c, e: post(c, report(e, status="finished")),
    "unknown flow execution": lambda c, e: post(
        c, report(e, flow_execution_id="00000000-0000-4000-8000-000000000000")
    ),
    "foreign organization_id": lambda c, e: post(
        c, report(e, organization_id="00000000-0000-4000-8000-000000000001")
    ),
    "own organization_id": lambda c, e: post(c, report(e, organization_id=str(e.organization_id))),
    "running with a worker": lambda c, e: post(c, report(e, status="running", worker_id="w1")),
    "another worker's lease": lambda c, e: (
        post(c, report(e, status="running", worker_id="w1")),
        post(c, report(e, worker_id="w2")),
    )[1],
    "claim with a user key": lambda c, e: post(
        c, report(e, worker_id="w1", claim={"executors": ["noop"], "limit": 1})
    ),
    "not JSON": lambda c, e: post(c, b"{not json"),
    "not an object": lambda c, e: post(c, [1, 2]),
    "missing fields": lambda c, e: post(c, {"flow_execution_id": str(e.id)}),
    "negative index": lambda c, e: post(c, report(e, task_execution_idx=-1)),
    "NUL in a string": lambda c, e: post(c, report(e, output={"v": "a\u0000b"})),
    "a number past 64 bits": lambda c, e: post(c, report(e, output={"v": 2**70})),
    "charset in the content type": lambda c, e: post(
        c, report(e), content_type="application/json; charset=utf-8"
    ),
    "another content type": lambda c, e: post(c, b"a=1", content_type="text/plain"),
}


@pytest.mark.parametrize("kind", ["service", "user"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_lean_path_answers_as_the_drf_view(tenant, case, kind):
    client = tenant.client(kind)
    lean, drf = _both_paths(
        client,
        lambda: start(tenant.organization, shape_definition(DIAMOND)),
        CASES[case],
    )
    assert lean == drf


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer fpk_" + "x" * 40},
        {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        {"HTTP_X_API_KEY": "not-a-key"},
    ],
    ids=["no key", "unknown key", "malformed header", "not a key"],
)
def test_bad_credentials_get_the_drf_views_401(tenant, headers):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    from django.test import Client

    response = post(Client(), report(execution), **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "unauthorized"
    assert latest(execution, "a").status == TE.QUEUED


def test_a_read_only_key_gets_403_and_changes_nothing(tenant):
    from django.test import Client

    execution = start(tenant.organization, shape_definition(DIAMOND))
    _, raw = create_api_key(organization=tenant.organization, kind="service", read_only=True)
    response = post(Client(), report(execution), HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert latest(execution, "a").status == TE.QUEUED


def test_another_organizations_flow_execution_is_not_found(outsider_client, tenant, drf_post_fails):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    response = post(outsider_client, report(execution))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert latest(execution, "a").status == TE.QUEUED


def test_an_unexpected_error_is_a_500_envelope_and_logged(
    service_client, tenant, monkeypatch, caplog, drf_post_fails
):
    execution = start(tenant.organization, shape_definition(DIAMOND))

    def broken(**_):  # noqa: ANN003
        raise RuntimeError("boom")

    monkeypatch.setattr(report_path.reports, "report_and_claim", broken)
    with caplog.at_level(logging.ERROR, logger="executions.api.report_path"):
        response = post(service_client, report(execution))
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert "boom" not in response.content.decode()
    assert body["request_id"] == response["X-Request-ID"]
    assert any("boom" in (r.exc_text or "") for r in caplog.records)


def test_a_database_outage_is_503_with_retry_after_and_nothing_changes(
    service_client, tenant, monkeypatch, drf_post_fails
):
    """Workers retry 503, not 500: an outage while the key is looked up or the report
    decided must not cost the report."""
    from django.db import OperationalError

    from flowplatform import keycache

    execution = start(tenant.organization, shape_definition(DIAMOND))
    keycache.forget()

    def unavailable(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    for target in (
        "flowplatform.authentication.find_active_api_key",
        "executions.api.report_path.reports.report_and_claim",
    ):
        with monkeypatch.context() as patched:
            patched.setattr(target, unavailable)
            response = post(service_client, report(execution))
        assert response.status_code == 503, (target, response.content)
        assert response["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "service_unavailable"
        assert latest(execution, "a").status == TE.QUEUED


def test_reports_are_logged_and_counted_under_the_views_route(
    service_client, tenant, caplog, drf_post_fails
):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    with caplog.at_level(logging.INFO, logger="flowplatform.request"):
        response = post(service_client, report(execution))
    assert response.status_code == 200
    (line,) = [r for r in caplog.records if r.name == "flowplatform.request"]
    assert line.route == "/api/task-executions"
    assert line.status == 200
    assert line.organization_id == str(tenant.organization.id)


# -- under ASGI -------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def close_thread_connections():
    """Close the connection of the thread Django runs synchronous views on."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def report_thread(monkeypatch):
    """One report thread, whose database connection is closed after the test (PostgreSQL
    could not drop the test database while it is open)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    executor = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(report_path, "executor", executor)
    yield executor
    executor.submit(connections.close_all).result()
    executor.shutdown()


@pytest.fixture
def batch_thread(monkeypatch):
    """One thread for batches of reports, as ``report_thread``."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    executor = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(report_path, "batch_executor", executor)
    yield executor
    executor.submit(connections.close_all).result()
    executor.shutdown()


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_under_asgi_a_report_is_decided_on_a_report_thread(
    tenant, monkeypatch, report_thread, close_thread_connections
):
    """Through Django's ASGI handler: the report is stored and answered by the lean path
    (the DRF view would run on the request's own thread); other requests still reach
    their views."""
    from asgiref.sync import sync_to_async

    execution = await sync_to_async(start)(tenant.organization, shape_definition(DIAMOND))

    def refuse(self, request):  # noqa: ANN001
        raise AssertionError("the DRF view answered a usual report")

    drf_post = TaskExecutionsView.post
    monkeypatch.setattr(TaskExecutionsView, "post", refuse)
    threads = []
    decide = report_path.answer
    monkeypatch.setattr(
        report_path,
        "answer",
        lambda *args: threads.append(threading.current_thread()) or decide(*args),
    )
    client = AsyncClient()
    key = {"Authorization": f"Bearer {tenant.service_key}"}
    response = await client.post(
        URL, report(execution), content_type="application/json", headers=key
    )
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"] and response["X-Frame-Options"] == "DENY"
    assert threads and all(t in report_thread._threads for t in threads)
    stored = await TaskExecution.objects.aget(id=response.json()["id"])
    assert stored.status == TE.COMPLETED
    listed = await client.get(
        URL, {"flow_execution_id": str(execution.id), "task_name": "b"}, headers=key
    )
    assert listed.status_code == 200
    assert [row["status"] for row in listed.json()] == [TE.QUEUED]
    # An unusual body passes on to the DRF view, which words the 422.
    monkeypatch.setattr(TaskExecutionsView, "post", drf_post)
    bad = await client.post(
        URL, {"flow_execution_id": "x"}, content_type="application/json", headers=key
    )
    assert bad.status_code == 422


async def _asgi_post(body: bytes, key: str, *, path: str = URL, method: str = "POST") -> tuple:
    """One request through the production ASGI application (``flowplatform.asgi``)."""
    from asgiref.testing import ApplicationCommunicator

    from flowplatform.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(10)
    chunks = []
    while True:
        message = await communicator.receive_output(10)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, json.loads(b"".join(chunks) or b"null")


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_the_asgi_application_serves_reports_without_a_thread_per_request(
    tenant, monkeypatch, report_thread, close_thread_connections
):
    """The production ASGI handler answers the usual report in the event loop and on a
    report thread: no thread is started for the request (Django starts one per request
    for its signals), the request is logged and carries its id and headers; an unusual
    report and other routes are served by Django as ever."""
    from asgiref.sync import SyncToAsync, sync_to_async

    execution = await sync_to_async(start)(tenant.organization, shape_definition(DIAMOND))
    thread_sensitive_calls = []
    original_call = SyncToAsync.__call__

    def counting_call(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self._thread_sensitive:
            thread_sensitive_calls.append(getattr(self.func, "__qualname__", self.func))
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting_call)
    status, headers, body = await _asgi_post(
        json.dumps(report(execution)).encode(), tenant.service_key
    )
    assert status == 200, body
    # (WhiteNoise looks at the disk on a thread in development, DEBUG: not in production.)
    assert [c for c in thread_sensitive_calls if c != "WhiteNoise.find_file"] == []
    assert headers["x-request-id"] and headers["x-frame-options"] == "DENY"
    assert headers["content-type"] == "application/json"
    assert body["status"] == TE.COMPLETED
    assert (await TaskExecution.objects.aget(id=body["id"])).status == TE.COMPLETED

    status, _, body = await _asgi_post(b'{"flow_execution_id": "x"}', tenant.service_key)
    assert status == 422 and body["error"]["code"] == "validation_error"
    status, _, body = await _asgi_post(
        json.dumps(report(execution, task_name="b", status="running")).encode(), "fpk_" + "x" * 40
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _, body = await _asgi_post(b"", tenant.service_key, path="/api/me", method="GET")
    assert status == 200 and body["organization_id"] == str(tenant.organization.id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_a_report_with_a_known_key_waits_in_the_event_loop_for_its_batch(
    tenant, monkeypatch, report_thread, batch_thread, close_thread_connections
):
    """Once its key is known without a query, a report is not sent to a thread as a whole:
    it waits in the event loop, and only its batch runs on a report thread. Concurrent
    reports are all decided and answered as the thread path answers them."""
    from asgiref.sync import sync_to_async

    execution = await sync_to_async(start)(tenant.organization, shape_definition(DIAMOND))
    first = await _asgi_post(json.dumps(report(execution)).encode(), tenant.service_key)
    assert first[0] == 200, first  # the key is now cached and its use recorded

    batch_threads: list[threading.Thread] = []
    start_batch = report_path._start_batch

    def recording(lead):  # noqa: ANN001, ANN202
        def run():  # noqa: ANN202
            batch_threads.append(threading.current_thread())
            lead()

        start_batch(run)

    def whole_answer(*args):  # noqa: ANN002, ANN202
        raise AssertionError("a report with a known key was answered on a thread")

    monkeypatch.setattr(report_path, "_start_batch", recording)
    monkeypatch.setattr(report_path, "answer", whole_answer)
    bodies = [
        report(execution, task_name="b", task_execution_idx=idx, output={"n": idx})
        for idx in range(1, 13)
    ]
    answers = await asyncio.gather(
        *(_asgi_post(json.dumps(b).encode(), tenant.service_key) for b in bodies)
    )
    assert [status for status, _, _ in answers] == [201] * 12, answers
    assert {body["task_execution_idx"] for _, _, body in answers} == set(range(1, 13))
    assert all(headers["x-request-id"] for _, headers, _ in answers)
    assert batch_threads and all(t in batch_thread._threads for t in batch_threads)
    stored = await sync_to_async(
        lambda: sorted(
            TaskExecution.objects.filter(flow_execution=execution, task_name="b")
            .exclude(task_execution_idx=0)
            .values_list("task_execution_idx", "output")
        )
    )()
    assert stored == [(idx, {"n": idx}) for idx in range(1, 13)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_in_the_event_loop_refusals_and_outages_are_answered_in_the_envelope(
    tenant, monkeypatch, report_thread, batch_thread, close_thread_connections
):
    """The same refusals as on the thread path, each in the envelope, and nothing changes:
    a finished task reported otherwise (409), an unknown flow execution (404), another
    organization's id (403), and a database outage while the batch is decided (503)."""
    import uuid

    from asgiref.sync import sync_to_async
    from django.db import OperationalError

    from executions.services import task_executions

    execution = await sync_to_async(start)(tenant.organization, shape_definition(DIAMOND))
    done = await _asgi_post(json.dumps(report(execution)).encode(), tenant.service_key)
    assert done[0] == 200, done

    def whole_answer(*args):  # noqa: ANN002, ANN202
        raise AssertionError("a report with a known key was answered on a thread")

    monkeypatch.setattr(report_path, "answer", whole_answer)
    cases = [
        (report(execution, output={"v": 2}), 409, "conflict"),
        (report(execution, flow_execution_id=str(uuid.uuid4())), 404, "not_found"),
        (report(execution, organization_id=str(uuid.uuid4())), 403, "forbidden"),
    ]
    for body, status, code in cases:
        got, headers, answer = await _asgi_post(json.dumps(body).encode(), tenant.service_key)
        assert (got, answer["error"]["code"]) == (status, code), answer
        assert headers["allow"] == report_path.ALLOW

    def outage(batch):  # noqa: ANN001, ANN202
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(task_executions._reports, "_decide", outage)
    running = report(execution, task_name="b", status="running", output=None)
    got, headers, answer = await _asgi_post(json.dumps(running).encode(), tenant.service_key)
    assert got == 503 and headers["retry-after"] == "1", answer
    assert answer["error"]["code"] == "service_unavailable"
    stored = await sync_to_async(
        lambda: list(
            TaskExecution.objects.filter(flow_execution=execution).values_list(
                "task_name", "status", "output"
            )
        )
    )()
    assert sorted(stored) == [
        ("a", TE.COMPLETED, {"v": 1}),
        ("b", TE.QUEUED, None),
        ("c", TE.QUEUED, None),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_a_batch_never_waits_behind_reports_waiting_on_their_threads(
    tenant, report_thread, batch_thread, close_thread_connections
):
    """Reports whose key needs a query wait on the report threads for their batch; were
    batches queued behind them, a batch led for a report in the event loop could never
    start. With every report thread taken, such a report is still decided."""
    from asgiref.sync import sync_to_async

    execution = await sync_to_async(start)(tenant.organization, shape_definition(DIAMOND))
    warm = await _asgi_post(json.dumps(report(execution)).encode(), tenant.service_key)
    assert warm[0] == 200, warm
    release = threading.Event()
    taken = report_thread.submit(release.wait, 20)  # the only report thread, busy
    try:
        body = report(execution, task_name="b", status="running", output=None)
        status, _, answer = await _asgi_post(json.dumps(body).encode(), tenant.service_key)
        assert status == 200 and answer["status"] == TE.RUNNING, answer
    finally:
        release.set()
        taken.result(5)
