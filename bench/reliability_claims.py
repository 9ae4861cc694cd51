"""Row 7 at full size (not a test; too slow for CI): 50 concurrent claimers over 5,000 queued
tasks → every task claimed exactly once, 0 double claims. Prints the figure.

    .venv/bin/python bench/reliability_claims.py                     # temporary SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_reliability \\
        .venv/bin/python bench/reliability_claims.py                 # created when missing

A uvicorn server with 4 worker processes serves the database; 50 threads, each its own HTTP
client, claim 10 at a time (``POST /api/task-executions/claim``) until the queue is empty.
The CI-sized version (500 tasks) is
``flowplatform/tests/reliability/test_races_postgres.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATABASE_URL"):
    os.environ["SQLITE_PATH"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.reliability_common import ensure_database, migrate, new_tenant  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claimers", type=int, default=50)
    parser.add_argument("--executions", type=int, default=50)
    parser.add_argument("--width", type=int, default=100, help="tasks per execution")
    parser.add_argument("--limit", type=int, default=10, help="tasks per claim")
    args = parser.parse_args()
    ensure_database()
    migrate()

    from django.db import connection

    from executions.models import TaskExecution
    from flowplatform.tests.reliability.figures import figure
    from flowplatform.tests.reliability.races import claim_race, queue_tasks
    from realtime.tests.live import LiveServer, database_url, server_env

    organization, _, service_key = new_tenant("claims")
    executions = queue_tasks(organization, executions=args.executions, width=args.width)
    queued = TaskExecution.objects.filter(flow_execution__in=executions, status="queued").count()
    env = server_env(database_url=database_url(connection.settings_dict), redis_url=None)
    # Long leases: claimed tasks are held, never heartbeated, while the race runs.
    env.update(LOG_LEVEL="WARNING", CONN_MAX_AGE="0", FLOWPLATFORM_LEASE_SECONDS="3600")
    log = Path(tempfile.mkdtemp()) / "server.log"
    with LiveServer(env, log, workers=4, log_level="warning") as server:
        race = claim_race(server.http_url, service_key, claimers=args.claimers, limit=args.limit)
    running = TaskExecution.objects.filter(flow_execution__in=executions, status="running")
    owners = Counter(running.values_list("lease_owner", flat=True))
    figure(
        7,
        f"{args.claimers} claimers over {queued} queued tasks ({connection.vendor})",
        claimed=race.claimed,
        unique=race.unique,
        double_claims=race.double_claims,
        left_queued=queued - running.count(),
        claim_requests=race.requests,
        seconds=round(race.seconds, 2),
        claims_per_second=round(race.claimed / race.seconds, 1),
        claimers_that_got_work=len(owners),
        errors=len(race.errors),
    )
    ok = race.double_claims == 0 and race.unique == queued == running.count() and not race.errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
