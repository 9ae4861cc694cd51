"""Row 9, database half (not a test: it stops the machine's PostgreSQL, which every other
test run on it shares; run it by hand, once): stop PostgreSQL with ``-m immediate`` (a crash:
no checkpoint, no goodbye to clients) during a burst of worker reports, start it again, and
check that every request that got a 2xx is in the database. Prints: acknowledged N, lost 0.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_reliability \\
        .venv/bin/python bench/reliability_db_outage.py

The database is created when missing and migrated. A uvicorn server (2 worker processes,
production connection settings: a psycopg pool per process) takes six reporter
threads' task-status batches and ``completed`` reports; mid-burst PostgreSQL is stopped for
``--outage`` seconds, then started (``pg_ctlcluster --skip-systemctl-redirect <version> main
start``; it is started again whatever happens), and the burst goes on until the server
acknowledges writes again. The server-crash half runs in CI:
``flowplatform/tests/reliability/test_server_crash.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_reliability")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.reliability_common import ensure_database, migrate, new_tenant  # noqa: E402


def cluster(action: str, *extra: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *extra]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, timeout=120)


def ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], timeout=10).returncode == 0


def wait(predicate, timeout: float, what: str) -> float:  # noqa: ANN001
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL is down")
    parser.add_argument("--threads", type=int, default=6)
    args = parser.parse_args()
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        raise SystemExit("DATABASE_URL must be a PostgreSQL URL")
    ensure_database()
    migrate()

    from django.db import connection, connections

    from executions.engine import lifecycle
    from executions.models import FlowExecution
    from executions.tests.engine.factories import make_flow
    from flowplatform.tests.reliability.bursts import Burst, lost_acknowledged, run_burst
    from flowplatform.tests.reliability.figures import figure
    from flowplatform.tests.reliability.test_server_crash import DEFINITION, TASKS
    from realtime.tests.live import LiveServer, database_url, server_env

    organization, _, service_key = new_tenant("db-outage")
    flow = make_flow(organization, DEFINITION)
    execution = lifecycle.start_flow_execution(
        execution=FlowExecution.objects.create(
            organization=organization, flow=flow, flow_version=1
        ),
        actor="bench",
    )
    env = server_env(database_url=database_url(connection.settings_dict), redis_url=None)
    env.update(LOG_LEVEL="WARNING", DEBUG="false", SECRET_KEY="bench-" + "x" * 40)
    env.update(ALLOWED_HOSTS="127.0.0.1,localhost")
    connections.close_all()
    log = Path(tempfile.mkdtemp()) / "server.log"
    burst = Burst()
    stopped_at = started_at = recovered_after = None
    acknowledged_before = 0
    with LiveServer(env, log, workers=2, log_level="warning") as server:
        reporters = run_burst(
            burst,
            base_url=lambda: server.http_url,
            key=service_key,
            flow_execution_id=str(execution.id),
            task_names=TASKS,
            threads=args.threads,
        )
        try:
            wait(lambda: burst.outcomes["2xx"] >= 200, 60, "a burst under way")
            acknowledged_before = burst.outcomes["2xx"]
            try:
                cluster("stop", "-m", "immediate")
                stopped_at = time.monotonic()
                time.sleep(args.outage)
            finally:
                cluster("start")  # whatever happened: the machine's tests need it
                started_at = time.monotonic()
            wait(ready, 60, "pg_isready")
            mark = burst.outcomes["2xx"]
            recovered_after = wait(
                lambda: burst.outcomes["2xx"] > mark, 60, "the first 2xx after the restart"
            )
            wait(lambda: burst.outcomes["2xx"] >= mark + 200, 60, "the burst to go on")
        finally:
            burst.stop.set()
            for reporter in reporters:
                reporter.join(10)
        server_log = server.log()
    connections.close_all()
    lost = lost_acknowledged(burst)
    failures = {k: v for k, v in burst.outcomes.items() if k != "2xx"}
    figure(
        9,
        "PostgreSQL stopped (-m immediate) during a burst of reports",
        acknowledged_requests=burst.outcomes["2xx"],
        acknowledged_records=len(burst.acknowledged),
        acknowledged_before_stop=acknowledged_before,
        outage_seconds=round(started_at - stopped_at, 1) if stopped_at and started_at else None,
        first_2xx_after_start_seconds=round(recovered_after or -1, 2),
        failed_requests=failures,
        lost=len(lost),
    )
    if lost:
        print("lost:", lost[:20])
        print(server_log[-3000:])
    return 0 if not lost else 1


if __name__ == "__main__":
    sys.exit(main())
