"""What the claim long-poll does to the rest of the API, per serving mode (not a load test).

    .venv/bin/python bench/claim_longpoll.py [--mode gunicorn|uvicorn|both] [--workers N]
        [--claims N] [--wait 5]

``POST /api/task-executions/claim`` with ``wait_seconds`` is an async view that waits for
work without holding a database connection. Under an ASGI server that costs nothing; under
gunicorn's sync workers Django runs it through ``async_to_sync`` and the worker process is
pinned for the whole wait. This starts flowplatform alone, opens ``--claims`` long-polls
(default: one per server worker) for an executor that has no work, and meanwhile times 10
ordinary requests (``GET /api/task-executions?limit=1``), one after the other.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def main() -> None:
    import httpx

    parser = harness.http_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=0, help="default: one per server worker")
    parser.add_argument("--wait", type=float, default=5.0, help="claims' wait_seconds (<= 30)")
    args = parser.parse_args()
    harness.setup_django()
    organization, key = harness.new_organization("bench-longpoll")
    headers = {"Authorization": f"Bearer {key}"}
    wait = max(1.0, min(args.wait, 30.0))
    try:
        for mode, workers in harness.modes(args):
            env = {
                **harness.flowplatform_env(redis=not args.no_redis),
                **harness.connection_env(mode),
            }
            with harness.running_server(
                name="flowplatform",
                app="flowplatform",
                mode=mode,
                workers=workers,
                env=env,
                probe="/healthz",
            ) as server:
                with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                    for _ in range(5):  # warm every worker a little
                        client.get("/api/task-executions?limit=1").raise_for_status()
                claims = args.claims or workers
                durations: list[float] = []

                def claim(durations: list[float] = durations) -> None:
                    began = time.perf_counter()
                    httpx.post(
                        server.url + "/api/task-executions/claim",
                        headers=headers,
                        json={
                            "worker_id": "bench",
                            "executors": ["nothing-here"],
                            "limit": 1,
                            "wait_seconds": wait,
                        },
                        timeout=wait + 30,
                    ).raise_for_status()
                    durations.append(time.perf_counter() - began)

                threads = [threading.Thread(target=claim) for _ in range(claims)]
                for thread in threads:
                    thread.start()
                time.sleep(0.5)  # the claims are waiting now
                latencies = []
                with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                    for _ in range(10):
                        began = time.perf_counter()
                        client.get("/api/task-executions?limit=1").raise_for_status()
                        latencies.append((time.perf_counter() - began) * 1000)
                for thread in threads:
                    thread.join(wait + 60)
                print(
                    f"{mode} x{workers} workers, {claims} claims waiting {wait:g} s: other"
                    f" requests p50 {statistics.median(latencies):.0f} ms, max"
                    f" {max(latencies):.0f} ms; claims answered after"
                    f" {statistics.median(durations):.1f} s (median)",
                    flush=True,
                )
    finally:
        harness.delete_organization(organization)


if __name__ == "__main__":
    main()
