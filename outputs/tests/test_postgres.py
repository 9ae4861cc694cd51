"""PostgreSQL only: streaming a large list from a server-side cursor, and concurrent creates."""

from __future__ import annotations

import threading
import tracemalloc
from datetime import UTC, datetime
from uuid import UUID

import orjson
import pytest
from django.db import connection
from django.http import StreamingHttpResponse

from outputs import api as views
from outputs.models import TaskOutput
from realtime.models import Event

pytestmark = pytest.mark.postgres

URL = "/api/task-outputs"
N = 20_000
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def create_outputs(execution, count: int) -> int:  # noqa: ANN001
    TaskOutput.objects.bulk_create(
        (
            TaskOutput(
                organization_id=execution.organization_id,
                flow_execution=execution,
                flow_version=1,
                task_name=f"t{i:05d}",
                summary={"i": i},
                output={"payload": "x" * 200},
                tags=["bulk"],
                status="completed",
            )
            for i in range(count)
        ),
        batch_size=5000,
    )
    # Four outputs share each created_at, so the id tie-break is exercised throughout.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE outputs_taskoutput SET created_at = %s"
            " + (substr(task_name, 2)::int / 4) * interval '1 millisecond'"
            " WHERE flow_execution_id = %s",
            [T0, execution.id],
        )
    return count


def open_cursors() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_cursors")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_20000_outputs_are_streamed_complete_and_ordered_in_flat_memory(
    service_client, flow_execution, monkeypatch
):
    create_outputs(flow_execution, N)

    # 1. Memory: the peak is bounded by one chunk of rows, not by the row count.
    monkeypatch.setattr(views, "STREAM_CHUNK_SIZE", 250)
    service_client.get(URL, {"limit": 1})  # warm up: the first request imports modules
    tracemalloc.start()
    try:
        response = service_client.get(URL)
        total = sum(len(piece) for piece in response.streaming_content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 5_000_000  # ~13 MB of JSON went through
    assert peak < total / 8, (peak, total)  # holding the body alone would be > total

    # 2. Streamed from a server-side cursor, in many pieces, complete and ordered.
    monkeypatch.undo()
    response = service_client.get(URL)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    pieces = iter(response.streaming_content)
    first = next(pieces)
    assert first.startswith(b"[{")
    # While the body is produced, rows come from a named (server-side) cursor.
    assert any("outputs_taskoutput" in statement for statement in open_cursors())
    rest = list(pieces)
    assert len(rest) + 1 >= N // views.STREAM_CHUNK_SIZE  # many pieces, not one body
    assert not any("outputs_taskoutput" in statement for statement in open_cursors())

    data = orjson.loads(b"".join([first, *rest]))
    assert len(data) == N
    assert {row["task_name"] for row in data} == {f"t{i:05d}" for i in range(N)}
    keys = [(datetime.fromisoformat(row["created_at"]), UUID(row["id"])) for row in data]
    assert keys == sorted(keys, reverse=True)
    assert len({row["id"] for row in data}) == N


@pytest.mark.django_db
def test_a_stream_closed_early_releases_its_cursor_and_transaction(service_client, flow_execution):
    create_outputs(flow_execution, 2500)
    response = service_client.get(URL)
    pieces = iter(response.streaming_content)
    next(pieces)
    assert open_cursors()
    # What HttpResponse.close() calls when a server stops early (the client went away).
    # Not response.close() itself: its request_finished handler would close the test's
    # connection, which is inside the test transaction.
    response.json_stream.close()
    assert not any("outputs_taskoutput" in statement for statement in open_cursors())
    assert service_client.get(f"{URL}?limit=1").status_code == 200  # connection still usable


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_posts_create_exactly_one_row(tenant, flow_execution):
    body = {
        "flow_execution_id": str(flow_execution.id),
        "task_name": "a",
        "summary": {"pages": 1},
        "status": "completed",
    }
    workers = 8
    barrier = threading.Barrier(workers)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            client = tenant.client("service")
            barrier.wait(timeout=10)
            statuses.append(client.post(URL, body, format="json").status_code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(statuses) == [200] * (workers - 1) + [201]
    assert TaskOutput.objects.filter(flow_execution=flow_execution).count() == 1
    assert list(Event.objects.values_list("type", flat=True)) == ["task_output.created"]
