"""Benchmark: ``GET /api/task-outputs`` over 100,000 outputs (DESIGN §11: first byte < 100 ms,
peak memory growth < 50 MB), against a baseline that builds the same list in memory.

Not a test: it prints figures. Run from the repository root, with PostgreSQL up::

    .venv/bin/python bench/task_outputs_list.py                 # 100,000 rows, 3 runs each
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/task_outputs_list.py --rows 100000 --runs 3 [--keep]

What it does, all bounded (at most 1,000,000 rows, every request and server start has a
timeout, servers are killed on exit):

1. Migrates the database in ``DATABASE_URL`` and (re)creates its own organization
   ``bench-task-outputs`` holding ``--rows`` task outputs over 100 flow executions, inserted
   with one ``INSERT … SELECT generate_series`` (a few seconds). The organization and
   everything in it is deleted at the end unless ``--keep`` (a kept one is reused when its
   row count matches).
2. For each variant and each run, starts a fresh uvicorn server (one process, the project's
   ASGI application, ``DEBUG=false``) on a free loopback port, warms it up, then issues one
   ``GET`` and measures on the client the time to first body byte and the total time, and on
   the server the peak resident memory growth: ``VmRSS`` before the request against the
   higher of ``VmHWM`` (reset through ``/proc/<pid>/clear_refs`` just before) and ``VmRSS``
   sampled every 2 ms during it.

Variants:

- ``streamed``: the real ``GET /api/task-outputs`` (server-side cursor, orjson, streamed).
- ``in-memory (DRF)``: the baseline, ``GET /api/bench/task-outputs-in-memory``, a view that
  exists only in this benchmark's server: the same query rendered the DRF-default way, a
  ``ModelSerializer(many=True)`` whose ``.data`` is rendered whole into one response.

The server of this benchmark is this module (``bench.task_outputs_list:application``): it
serves the project's URLs plus the baseline view.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
ORG_NAME = "bench-task-outputs"
MAX_ROWS = 1_000_000
EXECUTIONS = 100
SERVER_ENV = "FLOWPLATFORM_TASK_OUTPUTS_BENCH_SERVER"
REQUEST_TIMEOUT = 600.0
BASELINE_PATH = "/api/bench/task-outputs-in-memory"
STREAMED_PATH = "/api/task-outputs"


# --- the server side: this module is also the ASGI application and URLconf ------------------


def _server_application() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    settings.ROOT_URLCONF = __name__
    chunk = os.environ.get("BENCH_STREAM_CHUNK_SIZE")
    if chunk:  # an experiment: rows per cursor fetch of the streamed list
        import outputs.api

        outputs.api.STREAM_CHUNK_SIZE = int(chunk)
    from config.asgi import application

    return application


def _bench_urlpatterns() -> list:
    from django.urls import path
    from rest_framework import serializers
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from config.urls import urlpatterns as project_urlpatterns
    from outputs.models import TaskOutput

    class TaskOutputModelSerializer(serializers.ModelSerializer):
        organization_id = serializers.UUIDField()
        flow_execution_id = serializers.UUIDField()

        class Meta:
            model = TaskOutput
            fields = [
                "id", "organization_id", "flow_execution_id", "flow_version", "task_name",
                "summary", "output", "tags", "status", "created_at", "updated_at",
                "modified_by", "edited_status", "stale_status",
            ]  # fmt: skip

    class InMemoryTaskOutputList(APIView):
        """The baseline: the whole list built in memory, then rendered at once."""

        def get(self, request: Request) -> Response:
            rows = (
                TaskOutput.objects.filter(organization=request.auth.organization)
                .exclude(status="deleted")
                .order_by("-created_at", "-id")
            )
            return Response(TaskOutputModelSerializer(rows, many=True).data)

    return [
        path(BASELINE_PATH.removeprefix("/"), InMemoryTaskOutputList.as_view()),
        *project_urlpatterns,
    ]


def __getattr__(name: str) -> Any:  # the URLconf's ``urlpatterns``, built on first use
    if name == "urlpatterns":
        return _bench_urlpatterns()
    raise AttributeError(name)


if os.environ.get(SERVER_ENV) == "1":
    application = _server_application()


# --- the driver -------------------------------------------------------------------------------


@dataclass
class Measurement:
    variant: str
    ttfb_ms: float
    total_ms: float
    bytes: int
    rss_before_mb: float
    rss_growth_mb: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark organization")
    parser.add_argument(
        "--skip-baseline", action="store_true", help="measure the streamed list only"
    )
    args = parser.parse_args()
    if not 1 <= args.rows <= MAX_ROWS:
        parser.error(f"--rows must be within 1..{MAX_ROWS}")

    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    logging.getLogger("httpx").setLevel(logging.WARNING)

    call_command("migrate", interactive=False, verbosity=0)
    started = time.perf_counter()
    organization, key = prepare_organization(args.rows)
    print(f"{args.rows:,} outputs ready in {time.perf_counter() - started:.1f} s")
    try:
        variants = [("streamed", STREAMED_PATH)]
        if not args.skip_baseline:
            variants.append(("in-memory (DRF)", BASELINE_PATH))
        results: list[Measurement] = []
        for label, path in variants:
            for run in range(args.runs):
                with running_server() as (url, pid):
                    measurement = measure(label, url, path, key, pid, expected_rows=args.rows)
                results.append(measurement)
                print(
                    f"  {label} run {run + 1}: first byte {measurement.ttfb_ms:.1f} ms, "
                    f"total {measurement.total_ms:.0f} ms, "
                    f"RSS +{measurement.rss_growth_mb:.1f} MB",
                    flush=True,
                )
        print_table(results, rows=args.rows)
    finally:
        if not args.keep:
            delete_organization(organization)


def prepare_organization(rows: int) -> tuple[Any, str]:
    """The benchmark's organization with exactly ``rows`` outputs, and a fresh service key."""
    from django.db import connection

    from executions.models import Flow, FlowExecution, FlowVersion
    from flowplatform.models import ApiKey, Organization
    from flowplatform.services import create_api_key, create_organization
    from outputs.models import TaskOutput

    organization = Organization.objects.filter(name=ORG_NAME).first()
    if (
        organization is not None
        and TaskOutput.objects.filter(organization=organization).count() != rows
    ):
        delete_organization(organization)
        organization = None
    if organization is None:
        organization = create_organization(name=ORG_NAME)
        definition = {"tasks": [{"name": "fetch", "task_executor_name": "noop"}]}
        flow = Flow.objects.create(
            organization=organization, display_name="bench", definition=definition
        )
        FlowVersion.objects.create(
            organization=organization, flow=flow, version=1, definition=definition
        )
        executions = FlowExecution.objects.bulk_create(
            FlowExecution(organization=organization, flow=flow, flow_version=1, status="completed")
            for _ in range(EXECUTIONS)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO outputs_taskoutput (
                    id, organization_id, flow_execution_id, flow_version, task_name, summary,
                    output, tags, status, created_at, updated_at, modified_by, edited_status,
                    stale_status)
                SELECT
                    gen_random_uuid(), %(org)s, (%(executions)s::uuid[])[(g.i %% %(n_fe)s) + 1],
                    1, 'task_' || (g.i / %(n_fe)s),
                    jsonb_build_object('status_code', 200, 'response_time_ms', g.i %% 500),
                    jsonb_build_object(
                        'json', jsonb_build_object('title', 'Item ' || g.i, 'rows', g.i %% 97,
                                                   'ok', true),
                        'text', repeat('lorem ipsum ', 20)),
                    '["bench", "nightly"]'::jsonb, 'completed',
                    %(t0)s - g.i * interval '10 milliseconds',
                    %(t0)s - g.i * interval '10 milliseconds',
                    'system', 'not_edited', 'consistent'
                FROM generate_series(0, %(rows)s - 1) AS g(i)
                """,
                {
                    "org": organization.id,
                    "executions": [e.id for e in executions],
                    "n_fe": EXECUTIONS,
                    "rows": rows,
                    "t0": datetime.now(UTC),
                },
            )
            cursor.execute("ANALYZE outputs_taskoutput")
    ApiKey.objects.filter(organization=organization).delete()
    _, key = create_api_key(organization=organization, kind="service", name="bench")
    return organization, key


def delete_organization(organization: Any) -> None:
    from executions.models import Flow, FlowExecution
    from outputs.models import TaskOutput
    from realtime.models import Event

    TaskOutput.objects.filter(organization=organization).delete()
    Event.objects.filter(organization=organization).delete()
    FlowExecution.objects.filter(organization=organization).delete()
    Flow.objects.filter(organization=organization).delete()
    organization.delete()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server() -> Iterator[tuple[str, int]]:
    """A fresh one-process uvicorn serving this module's application; yields (url, pid)."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        SERVER_ENV: "1",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-task-outputs-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "uvicorn", "bench.task_outputs_list:application",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux, needs permission)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure(
    label: str, url: str, path: str, key: str, pid: int, *, expected_rows: int
) -> Measurement:
    import httpx
    import orjson

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=REQUEST_TIMEOUT, headers=headers) as client:
        for _ in range(3):  # warm up: imports, connection, URL resolver, a small query
            client.get(url + STREAMED_PATH, params={"limit": 10}).raise_for_status()
        time.sleep(0.2)
        rss_before = status_kb(pid, "VmRSS")
        hwm_reset = reset_peak(pid)
        sampled_peak = rss_before
        done = threading.Event()

        def sample() -> None:
            nonlocal sampled_peak
            while not done.is_set():
                with contextlib.suppress(OSError, KeyError):
                    sampled_peak = max(sampled_peak, status_kb(pid, "VmRSS"))
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        pieces: list[bytes] = []
        started = time.perf_counter()
        first_byte = None
        with client.stream("GET", url + path) as response:
            response.raise_for_status()
            for piece in response.iter_raw():
                if first_byte is None and piece:
                    first_byte = time.perf_counter()
                pieces.append(piece)
        finished = time.perf_counter()
        done.set()
        sampler.join()
        peak = max(sampled_peak, status_kb(pid, "VmHWM") if hwm_reset else 0)

    body = b"".join(pieces)
    rows = orjson.loads(body)
    if len(rows) != expected_rows:
        raise RuntimeError(f"{label}: {len(rows)} rows, expected {expected_rows}")
    keys = [(datetime.fromisoformat(r["created_at"]), uuid.UUID(r["id"])) for r in rows[:5000]]
    if keys != sorted(keys, reverse=True):
        raise RuntimeError(f"{label}: rows are not newest first")
    return Measurement(
        variant=label,
        ttfb_ms=((first_byte or finished) - started) * 1000,
        total_ms=(finished - started) * 1000,
        bytes=len(body),
        rss_before_mb=rss_before / 1024,
        rss_growth_mb=(peak - rss_before) / 1024,
    )


def print_table(results: list[Measurement], *, rows: int) -> None:
    print()
    print(f"GET task outputs, {rows:,} rows, one uvicorn process (median of runs; max RSS growth)")
    header = (
        f"{'variant':<18} {'runs':>4} {'first byte ms':>14} {'total ms':>9} "
        f"{'MB sent':>8} {'RSS before MB':>14} {'RSS growth MB':>14}"
    )
    print(header)
    print("-" * len(header))
    for variant in dict.fromkeys(r.variant for r in results):
        group = [r for r in results if r.variant == variant]
        print(
            f"{variant:<18} {len(group):>4} "
            f"{statistics.median(r.ttfb_ms for r in group):>14.1f} "
            f"{statistics.median(r.total_ms for r in group):>9.0f} "
            f"{group[0].bytes / 1e6:>8.1f} "
            f"{statistics.median(r.rss_before_mb for r in group):>14.1f} "
            f"{max(r.rss_growth_mb for r in group):>14.1f}"
        )
    print("targets (DESIGN §11): first byte < 100 ms, peak memory growth < 50 MB")


if __name__ == "__main__":
    main()
