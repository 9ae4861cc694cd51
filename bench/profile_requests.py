"""Per-request CPU cost of an endpoint, in one process, one request at a time (not a load
test): where the time of the hot paths goes, without the noise of concurrency.

    .venv/bin/python bench/profile_requests.py                      # every endpoint + floor
    .venv/bin/python bench/profile_requests.py --only create --profile   # pyinstrument tree

Each endpoint is called ``--requests`` times (after a warm-up) through Django's full request
handler (``django.test.Client``: middleware, DRF, renderer; no socket) with production
settings (``DEBUG`` off, PostgreSQL, JSON logs at INFO written to /dev/null, Redis channel
layer when ``REDIS_URL`` is reachable). It prints the CPU time (``time.process_time``, all
threads of the process) and wall time per request. The floor's insert and list are measured
the same way in a child process with the floor's settings. ``--profile`` prints a
pyinstrument call tree of the measured requests (``pip install pyinstrument``).

CPU per request is what bounds throughput on a 2-core machine, so
``floor CPU / flowplatform CPU`` predicts the load benchmarks' ratio when both are CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

ENDPOINTS = (
    "create",
    "rereport",
    "edit",
    "status10",
    "status100",
    "outputs_create",
    "outputs_update",
    "te_list",
)
FLOOR_ENDPOINTS = ("floor_insert", "floor_list", "floor_batch100")


def production_env() -> None:
    os.environ.setdefault("DATABASE_URL", harness.database_url())
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-profile-" + uuid.uuid4().hex)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("LOG_LEVEL", os.environ.get("BENCH_LOG_LEVEL", "INFO"))
    os.environ.setdefault("LOG_FORMAT", "json")
    os.environ.setdefault("REDIS_URL", harness.redis_url())


def silence_console_logs() -> None:
    import logging

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def measure(
    label: str, call: Callable[[int], Any], *, requests: int, profile: bool, expect: int
) -> dict[str, Any]:
    for i in range(min(20, requests)):  # warm-up: imports, caches, connection
        response = call(-1 - i)
        assert response.status_code == expect, (label, response.status_code, response.content)
    idle = time.process_time()
    time.sleep(0.5)
    idle = (time.process_time() - idle) / 0.5  # background threads' share of a CPU
    profiler = None
    if profile == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    elif profile == "cprofile":
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(requests):
        response = call(i)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        if response.status_code != expect:
            raise RuntimeError(f"{label}: {response.status_code} {response.content[:300]!r}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profile == "pyinstrument":
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False, short_mode=False))
    elif profile == "cprofile":
        import pstats

        profiler.disable()
        print(f"--- {label}: CPU profile (cProfile, process time), top by cumulative")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return {
        "endpoint": label,
        "cpu_ms": cpu / requests * 1000,
        "wall_ms": wall / requests * 1000,
        "requests": requests,
        "idle_cpu": idle,
    }


def run_flowplatform(args: Any) -> list[dict[str, Any]]:
    production_env()
    harness.setup_django()
    silence_console_logs()
    from django.test import Client

    from bench.task_executions_edit import complete_dag, make_dag_flow
    from bench.task_executions_list import fill_task_executions

    organization, key = harness.new_organization("bench-profile")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    results = []

    def post(path: str, body: Any) -> Any:
        return client.post(path, json.dumps(body), content_type="application/json")

    try:
        flow = harness.make_flow(organization, harness.noop_tasks([f"t{i}" for i in range(10)]))
        fe = str(harness.start_execution(flow).id)
        wanted = [e for e in ENDPOINTS if not args.only or e in args.only]
        calls: dict[str, tuple[Callable[[int], Any], int]] = {}
        calls["create"] = (
            lambda i: post(
                "/api/task-executions",
                {
                    "flow_execution_id": fe,
                    "task_name": f"t{i % 10}",
                    "task_execution_idx": 1000 + i,
                    "status": "completed",
                    "output": {"n": i},
                    "worker_id": "bench",
                },
            ),
            201,
        )
        same = {
            "flow_execution_id": fe,
            "task_name": "t0",
            "task_execution_idx": 999,
            "status": "completed",
            "output": {"n": 1},
            "worker_id": "bench",
        }
        calls["rereport"] = (lambda i: post("/api/task-executions", same), 200)
        if "rereport" in wanted:
            post("/api/task-executions", same)
        if "edit" in wanted:
            dag = make_dag_flow(organization)
            roots = []
            for _ in range(2):
                roots.append(complete_dag(harness.start_execution(dag), organization))
            calls["edit"] = (
                lambda i: client.put(
                    "/api/task-executions",
                    json.dumps({"id": roots[i % 2], "output": {"edited": i}}),
                    content_type="application/json",
                ),
                200,
            )
        for size in (10, 100):
            statuses = [{"task_name": f"t{i % 10}", "status": "running"} for i in range(size)]
            calls[f"status{size}"] = (
                lambda i, s=statuses: post(
                    f"/api/flow-executions/{fe}/task-status", {"statuses": s}
                ),
                200,
            )
        if "outputs_create" in wanted:
            out_flow = harness.make_flow(
                organization, harness.noop_tasks([f"o{i}" for i in range(1000)]), name="outputs"
            )
            out_fe = str(harness.start_execution(out_flow).id)
            from outputs.models import TaskOutput

            TaskOutput.objects.filter(flow_execution_id=out_fe).delete()
            calls["outputs_create"] = (
                lambda i: post(
                    "/api/task-outputs",
                    {"flow_execution_id": out_fe, "task_name": f"o{i % 1000}", "summary": {}},
                ),
                201,
            )
        calls["outputs_update"] = (
            lambda i: post(
                "/api/task-outputs",
                {"flow_execution_id": fe, "task_name": "t1", "summary": {"n": i}},
            ),
            200,
        )
        if "te_list" in wanted:
            list_fe = harness.start_execution(flow)
            fill_task_executions(list_fe, 100)
            calls["te_list"] = (
                lambda i: client.get(f"/api/task-executions?flow_execution_id={list_fe.id}"),
                200,
            )
        for name in wanted:
            call, expect = calls[name]
            requests = args.requests
            if name == "outputs_create":
                requests = min(requests, 900)
            results.append(
                measure(name, call, requests=requests, profile=args.profile, expect=expect)
            )
    finally:
        harness.delete_organization(organization)
    return results


def run_floor(args: Any) -> list[dict[str, Any]]:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.floor.settings"
    os.environ.setdefault("DATABASE_URL", harness.database_url())
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    settings.ALLOWED_HOSTS = ["testserver"]
    harness.prepare_floor()
    group = uuid.uuid4()
    harness.floor_rows(group, 100)
    client = Client()
    insert_group = uuid.uuid4()
    calls = {
        "floor_insert": (
            lambda i: client.post(
                "/rows",
                json.dumps(
                    {
                        "group": str(insert_group),
                        "name": f"t{i % 10}",
                        "idx": abs(i),
                        "status": "completed",
                        "payload": {"n": i},
                    }
                ),
                content_type="application/json",
            ),
            201,
        ),
        "floor_list": (lambda i: client.get(f"/rows?group={group}"), 200),
        "floor_batch100": (
            lambda i: client.post(
                "/rows/batch",
                json.dumps(
                    {
                        "group": str(insert_group),
                        "rows": [{"name": f"t{j % 10}", "status": "running"} for j in range(100)],
                    }
                ),
                content_type="application/json",
            ),
            200,
        ),
    }
    results = []
    try:
        for name in FLOOR_ENDPOINTS:
            if args.only and name not in args.only:
                continue
            call, expect = calls[name]
            results.append(
                measure(name, call, requests=args.requests, profile=args.profile, expect=expect)
            )
    finally:
        harness.delete_floor_rows([group, insert_group])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", nargs="*", choices=[*ENDPOINTS, *FLOOR_ENDPOINTS])
    parser.add_argument(
        "--profile",
        nargs="?",
        const="cprofile",
        choices=["cprofile", "pyinstrument"],
        help="print a CPU profile (cProfile, process time) or a pyinstrument (wall) tree",
    )
    parser.add_argument("--app", choices=["flowplatform", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.requests = max(10, min(args.requests, 5000))
    if args.app == "floor":
        print("RESULTS " + json.dumps(run_floor(args)))
        return
    if args.app == "flowplatform":
        print("RESULTS " + json.dumps(run_flowplatform(args)))
        return
    results = []
    for app in ("flowplatform", "floor"):
        if args.only and not any(
            (name in FLOOR_ENDPOINTS) == (app == "floor") for name in args.only
        ):
            continue
        command = [sys.executable, __file__, "--app", app, "--requests", str(args.requests)]
        if args.only:
            command += ["--only", *args.only]
        if args.profile:
            command += ["--profile", args.profile]
        out = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
        )
        if out.returncode != 0:
            sys.exit(out.stderr[-4000:])
        for line in out.stdout.splitlines():
            if line.startswith("RESULTS "):
                results += json.loads(line.removeprefix("RESULTS "))
            else:
                print(line)
    print(f"\n{'endpoint':<18} {'CPU ms/request':>15} {'wall ms/request':>16} {'idle CPU':>9}")
    for row in results:
        print(
            f"{row['endpoint']:<18} {row['cpu_ms']:>15.2f} {row['wall_ms']:>16.2f}"
            f" {row['idle_cpu']:>9.1%}"
        )


if __name__ == "__main__":
    main()
