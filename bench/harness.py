"""Shared benchmark plumbing: servers on loopback, wrk runs, the floor, tables.

Everything is bounded: servers listen on free loopback ports and are killed on exit (their
whole process group), every wrk run has a fixed duration and a timeout, and every benchmark
deletes the rows it created.

The shape of an HTTP benchmark (``bench/task_executions_create.py`` and its siblings):

1. ``setup_django()`` in the driver process (flowplatform settings, ``DATABASE_URL``), then
   seed an organization of its own with ``new_organization()`` and the rows it needs.
2. ``with serving(mode, workers) as servers:`` starts flowplatform and the floor
   (``bench/floor``) the same way: gunicorn sync workers (WSGI) or uvicorn workers (ASGI).
3. ``compare(...)`` warms both up and measures them in the same run, back to back and
   interleaved (flowplatform, floor, floor, flowplatform, ...), so load from anything else
   on the machine hits both alike. The headline is the ratio flowplatform / floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_SECONDS = 60
MAX_CONNECTIONS = 256
WRK_THREADS = 2
# Default worker processes per server. On 2 cores with PostgreSQL, wrk and Redis on the same
# machine these measured best (bench/README.md, "Serving"): sync workers block on every
# database round trip, so a few more of them than cores keep the CPUs busy.
DEFAULT_WORKERS = {"gunicorn": 4, "uvicorn": 2}

WRK_REPORT = """
done = function(summary, latency, requests)
  io.write("WRKJSON ")
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""

# Every script gets ``tid`` (0..threads-1) from ``setup`` and ``next_n()``: a number unique
# across the run's threads and across runs (``BASE`` differs per run), for unique keys.
LUA_PRELUDE = """
local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end
local n = 0
function next_n()
  n = n + 1
  return BASE + n * THREADS + tid
end
"""


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the driver's own Django (seeding, cleanup) ------------------------------------------------


def setup_django() -> None:
    """Django with flowplatform's settings in this process, migrated, seeing every
    organization (like a management command: ``tenancy.bypass_process``)."""
    os.environ.setdefault("DATABASE_URL", database_url())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from flowplatform import tenancy

    tenancy.bypass_process()
    call_command("migrate", interactive=False, verbosity=0)


def new_organization(prefix: str) -> tuple[Any, str]:
    """A fresh organization with a high concurrency cap and a service key (raw)."""
    from flowplatform.services import create_api_key, create_organization

    organization = create_organization(
        name=f"{prefix}-{uuid.uuid4().hex[:8]}", max_concurrent_executions=10_000
    )
    _, key = create_api_key(organization=organization, kind="service", name="bench")
    return organization, key


# Tenant tables in foreign-key order (children first).
_ORG_TABLES = (
    "realtime_event",
    "executions_taskstatus",
    "outputs_taskoutput",
    "executions_taskexecution",
    "executions_flowexecution",
    "executions_flowversion",
    "executions_flow",
    "flowplatform_apikey",
    "flowplatform_serviceaccount",
    "flowplatform_membership",
)


def delete_organization(organization: Any) -> None:
    """Delete everything the benchmark created for ``organization`` (plain SQL: the ORM's
    cascade collector would load every row first)."""
    from django.db import connection, transaction

    from flowplatform import tenancy

    with transaction.atomic(), tenancy.bypass(), connection.cursor() as cursor:
        for table in _ORG_TABLES:
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.id])
        cursor.execute("DELETE FROM flowplatform_organization WHERE id = %s", [organization.id])
    vacuum(_ORG_TABLES)


def vacuum(tables: Sequence[str]) -> None:
    """Reclaim the rows a benchmark deleted. Where autovacuum is off (as on the machines
    these figures come from) they would otherwise pile up run after run, and every later
    run would walk past them in its index scans: the same benchmark then slows down over a
    day. PostgreSQL only; as the tables' owner when ``MIGRATION_DATABASE_URL`` names it."""
    import psycopg

    url = os.environ.get("MIGRATION_DATABASE_URL") or database_url()
    if not url.startswith(("postgres://", "postgresql://")):
        return
    with psycopg.connect(_psycopg_conninfo(url), autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")


def make_flow(organization: Any, tasks: list[dict[str, Any]], *, name: str = "bench") -> Any:
    """A published flow (version 1) with ``tasks`` (DSL task dicts)."""
    from executions import dsl
    from executions.models import Flow, FlowVersion

    canonical = dsl.validate_definition({"tasks": tasks}).to_dict()
    flow = Flow.objects.create(
        organization=organization, display_name=name, definition=canonical, version=1
    )
    FlowVersion.objects.create(
        organization=organization, flow=flow, version=1, definition=canonical
    )
    return flow


def noop_tasks(names: Sequence[str], deps: dict[str, list[str]] | None = None) -> list[dict]:
    deps = deps or {}
    return [{"name": n, "task_executor_name": "noop", "depends_on": deps.get(n, [])} for n in names]


def start_execution(flow: Any) -> Any:
    """A flow execution of ``flow`` started by the engine (its root tasks queued)."""
    from executions.engine import lifecycle
    from executions.models import FlowExecution

    execution = FlowExecution.objects.create(
        organization_id=flow.organization_id, flow=flow, flow_version=1, input={}
    )
    lifecycle.start_flow_execution(execution=execution, actor="bench")
    execution.refresh_from_db()
    return execution


# --- the floor's table -------------------------------------------------------------------------

FLOOR_TABLE = "bench_floor_row"


def _psycopg_conninfo(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def prepare_floor() -> None:
    """Create the floor's table when missing (by the owning role when
    ``MIGRATION_DATABASE_URL`` is set, so the application's role is granted it)."""
    import psycopg

    owner_url = os.environ.get("MIGRATION_DATABASE_URL") or database_url()
    with psycopg.connect(_psycopg_conninfo(owner_url), autocommit=True) as conn:
        conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (
                id uuid PRIMARY KEY,
                "group" uuid NOT NULL,
                name varchar(200) NOT NULL,
                idx integer NOT NULL,
                status varchar(20) NOT NULL,
                payload jsonb NULL,
                created_at timestamp with time zone NOT NULL
            )
            """
        )
        conn.execute(f'CREATE INDEX IF NOT EXISTS bench_floor_row_group ON {FLOOR_TABLE} ("group")')


def floor_rows(group: uuid.UUID, count: int) -> None:
    """``count`` rows in the floor's table under ``group`` (for its list)."""
    import psycopg

    with psycopg.connect(_psycopg_conninfo(database_url()), autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO {FLOOR_TABLE} (id, "group", name, idx, status, payload, created_at)
            SELECT gen_random_uuid(), %s, 'task_' || g, g, 'completed',
                   jsonb_build_object('n', g), now() - g * interval '1 millisecond'
            FROM generate_series(0, %s - 1) AS g
            """,
            [group, count],
        )


def delete_floor_rows(groups: Sequence[uuid.UUID]) -> None:
    import psycopg

    with psycopg.connect(_psycopg_conninfo(database_url()), autocommit=True) as conn:
        conn.execute(f'DELETE FROM {FLOOR_TABLE} WHERE "group" = ANY(%s)', [list(groups)])
    vacuum([FLOOR_TABLE])


# --- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_command(*, app: str, mode: str, port: int, workers: int) -> list[str]:
    """``app`` is a dotted module prefix (``flowplatform`` or ``bench.floor``).

    Both modes run a gunicorn master; flowplatform with its production configuration
    (``config/gunicorn_conf.py``: JSON logs, multi-process metrics) as
    ``bin/serve-prod`` does. ``uvicorn``: uvicorn worker processes serving the ASGI
    application (for flowplatform exactly ``bin/serve-prod``). ``gunicorn``: gunicorn's sync
    worker processes serving the WSGI application (command-line options override the
    configuration file's worker class).
    """
    if mode not in ("gunicorn", "uvicorn"):
        raise ValueError(f"unknown serving mode {mode!r}")
    package = "config" if app == "flowplatform" else app
    entry = f"{package}.wsgi:application" if mode == "gunicorn" else f"{package}.asgi:application"
    command = [PYTHON, "-m", "gunicorn", entry]
    if app == "flowplatform":
        command += ["-c", "python:config.gunicorn_conf"]
    if mode == "gunicorn":
        command += ["--worker-class", "sync"]
    elif app != "flowplatform":
        command += ["--worker-class", "uvicorn.workers.UvicornWorker"]
    return command + [
        "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--backlog", "2048",
        "--log-level", "warning", "--keep-alive", "5",
    ]  # fmt: skip


def flowplatform_env(*, redis: bool = True, **extra: str) -> dict[str, str]:
    """Production-like settings: DEBUG off, PostgreSQL, Redis channel layer, JSON logs at
    the production level (``LOG_LEVEL``, default INFO) written to the server's log file."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "LOG_FORMAT": "json",
    }
    if redis:
        env["REDIS_URL"] = redis_url()
    env.update(extra)
    return env


def connection_env(mode: str) -> dict[str, str]:
    """How each server process holds its database connections. Sync workers keep one
    persistent connection (``CONN_MAX_AGE``). Under ASGI every request's ORM calls run on a
    thread of its own, so persistent connections pile up until PostgreSQL refuses more
    ("too many clients"): a psycopg pool per process instead (bin/serve-prod does the same)."""
    if mode == "uvicorn" and os.environ.get("BENCH_ASGI_CONNECTIONS") != "persistent":
        return {"CONN_MAX_AGE": "0", "DATABASE_POOL": "true"}
    return {"CONN_MAX_AGE": "60", "DATABASE_POOL": "false"}


def floor_env() -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": "bench.floor.settings", "DATABASE_URL": database_url()}


@contextlib.contextmanager
def running_server(
    *,
    name: str,
    app: str,
    mode: str,
    workers: int,
    env: dict[str, str],
    probe: str = "/",
    command: list[str] | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    """One server process group on a free loopback port (or ``port``, which ``command``
    binds), killed on exit. Its output goes to a log file (printed if it fails to start)."""
    import httpx

    port = port or free_port()
    base = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "TEST_DATABASE_NAME"}}
    full_env = {**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command or server_command(app=app, mode=mode, port=port, workers=workers),
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, process, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(server.url + probe, timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.stderr.write(log.read_text()[-4000:])
                    raise RuntimeError(f"{name} server did not start") from None
                time.sleep(0.2)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(OSError):
            log.unlink()


@dataclass
class Servers:
    mode: str
    workers: int
    flowplatform: Server
    floor: Server
    tag: str = ""


def connection_report(servers: Servers, since: float) -> str:
    """How many PostgreSQL connections each server holds now, and how many of them were
    opened after ``since`` (a ``time.time()``): with working persistent connections or a
    pool, a measured run opens (almost) none."""
    import psycopg

    with psycopg.connect(_psycopg_conninfo(database_url()), autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT application_name, count(*),
                   count(*) FILTER (WHERE backend_start > to_timestamp(%s))
            FROM pg_stat_activity WHERE application_name = ANY(%s) GROUP BY 1
            """,
            [since, [f"bench-fp-{servers.tag}", f"bench-floor-{servers.tag}"]],
        ).fetchall()
    found = {name.split("-")[1]: (total, new) for name, total, new in rows}
    parts = []
    for side, label in (("fp", "flowplatform"), ("floor", "floor")):
        total, new = found.get(side, (0, 0))
        parts.append(f"{label} {total} open ({new} opened during the run)")
    return "database connections: " + ", ".join(parts)


@contextlib.contextmanager
def serving(mode: str, workers: int, *, redis: bool = True) -> Iterator[Servers]:
    """flowplatform and the floor, served the same way, side by side. Each server's
    database connections carry an ``application_name`` (``PGAPPNAME``) so the benchmark can
    count them (``connection_report``)."""
    prepare_floor()
    tag = uuid.uuid4().hex[:8]
    with (
        running_server(
            name="flowplatform",
            app="flowplatform",
            mode=mode,
            workers=workers,
            env={
                **flowplatform_env(redis=redis),
                **connection_env(mode),
                "PGAPPNAME": f"bench-fp-{tag}",
            },
            probe="/healthz",
        ) as fp,
        running_server(
            name="floor",
            app="bench.floor",
            mode=mode,
            workers=workers,
            env={**floor_env(), **connection_env(mode), "PGAPPNAME": f"bench-floor-{tag}"},
        ) as floor,
    ):
        yield Servers(mode, workers, fp, floor, tag)


# --- load --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    label: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU seconds the server's processes, and its PostgreSQL backends, used during the run.
    app_cpu: float = 0.0
    db_cpu: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def app_cpu_ms(self) -> float:
        return self.app_cpu / self.requests * 1000 if self.requests else 0.0

    @property
    def db_cpu_ms(self) -> float:
        return self.db_cpu / self.requests * 1000 if self.requests else 0.0


# --- CPU accounting: what one request costs, whatever share of the machine it got ----------

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return None


def _cpu_of(pids: Sequence[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:  # utime + stime (fields 14 and 15 of /proc/pid/stat)
            seconds[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return seconds


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


def _backend_pids(application_name: str) -> list[int]:
    import psycopg

    with psycopg.connect(_psycopg_conninfo(database_url()), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        ).fetchall()
    return [pid for (pid,) in rows]


@dataclass
class CpuMeter:
    """CPU used by one server's process group and its PostgreSQL backends (same machine)."""

    pgid: int
    application_name: str

    def snapshot(self) -> tuple[dict[int, float], dict[int, float]]:
        return _cpu_of(_group_pids(self.pgid)), _cpu_of(_backend_pids(self.application_name))

    def since(self, before: tuple[dict[int, float], dict[int, float]]) -> tuple[float, float]:
        after = self.snapshot()
        return tuple(  # type: ignore[return-value]
            sum(max(0.0, now - then.get(pid, 0.0)) for pid, now in current.items())
            for current, then in zip(after, before, strict=True)
        )


_run_counter = 0


def wrk(
    *,
    label: str,
    url: str,
    lua: str,
    connections: int = 16,
    seconds: float = 10,
    threads: int = WRK_THREADS,
) -> LoadResult:
    """Run wrk against ``url`` with ``lua`` (which defines ``request``), after the prelude
    (``tid``, ``next_n()``), and return its figures."""
    global _run_counter
    _run_counter += 1
    threads = max(1, min(threads, connections))
    seconds = max(1, min(int(round(seconds)), MAX_SECONDS))
    connections = max(1, min(connections, MAX_CONNECTIONS))
    header = f"BASE = {_run_counter * 1_000_000}\n"
    header += f"THREADS = {threads}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(header + LUA_PRELUDE + lua + "\n" + WRK_REPORT)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return LoadResult(
        label=label,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["non2xx"],
    )


def lua_string(value: str) -> str:
    """A Lua string literal (JSON's escaping is valid Lua for what we send)."""
    return json.dumps(value)


def lua_request(
    method: str, path: str, *, body_expr: str | None = None, key: str | None = None
) -> str:
    """A ``request`` function: ``body_expr`` is a Lua expression (may call ``next_n()``)."""
    headers = ['["Content-Type"] = "application/json"']
    if key:
        headers.append(f'["Authorization"] = {lua_string("Bearer " + key)}')
    body = body_expr or "nil"
    return f"""
local headers = {{{", ".join(headers)}}}
request = function()
  return wrk.format({lua_string(method)}, {lua_string(path)}, headers, {body})
end
"""


@dataclass
class Target:
    """One side of a comparison: what to send to which server."""

    label: str
    server: Callable[[Servers], Server]
    lua: str
    side: str = "fp"  # "fp" | "floor": whose PostgreSQL backends to count


@dataclass
class Comparison:
    name: str
    flowplatform: LoadResult
    floor: LoadResult | None
    rounds: list[tuple[LoadResult, LoadResult | None]] = field(default_factory=list)
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.floor is None or not self.floor.rps:
            return None
        return self.flowplatform.rps / self.floor.rps

    @property
    def cpu_ratio(self) -> float | None:
        """Requests per CPU-second (server + PostgreSQL), flowplatform / floor: the
        throughput ratio on a machine that gives both its whole CPU."""
        fp, floor = self.flowplatform, self.floor
        if floor is None:
            return None
        fp_cost, floor_cost = fp.app_cpu_ms + fp.db_cpu_ms, floor.app_cpu_ms + floor.db_cpu_ms
        return floor_cost / fp_cost if fp_cost and floor_cost else None


def _combine(label: str, runs: list[LoadResult]) -> LoadResult:
    return LoadResult(
        label=label,
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        app_cpu=sum(r.app_cpu for r in runs),
        db_cpu=sum(r.db_cpu for r in runs),
    )


def compare(
    servers: Servers,
    *,
    name: str,
    flowplatform: Target,
    floor: Target | None,
    seconds: float,
    connections: int,
    rounds: int = 2,
    warmup: float = 2,
) -> Comparison:
    """Warm both up, then ``rounds`` measured runs of ``seconds / rounds`` each side,
    alternating which side goes first (ABBA…). Requests/s is the total over the rounds,
    p50 the median of the rounds' p50s, p99 the worst round's p99."""
    sides = [flowplatform] + ([floor] if floor else [])
    for side in sides:
        wrk(
            label="warmup",
            url=side.server(servers).url,
            lua=side.lua,
            connections=connections,
            seconds=warmup,
        )
    per_round = max(1.0, seconds / rounds)
    since = time.time()
    results: dict[str, list[LoadResult]] = {side.label: [] for side in sides}
    pairs: list[tuple[LoadResult, LoadResult | None]] = []
    for index in range(rounds):
        order = sides if index % 2 == 0 else list(reversed(sides))
        got: dict[str, LoadResult] = {}
        for side in order:
            meter = CpuMeter(side.server(servers).process.pid, f"bench-{side.side}-{servers.tag}")
            before = meter.snapshot()
            got[side.label] = wrk(
                label=side.label,
                url=side.server(servers).url,
                lua=side.lua,
                connections=connections,
                seconds=per_round,
            )
            got[side.label].app_cpu, got[side.label].db_cpu = meter.since(before)
            results[side.label].append(got[side.label])
        pairs.append((got[flowplatform.label], got.get(floor.label) if floor else None))
    fp = _combine(flowplatform.label, results[flowplatform.label])
    fl = _combine(floor.label, results[floor.label]) if floor else None
    try:
        notes = connection_report(servers, since)
    except Exception as exc:  # noqa: BLE001 - a report, never a failure
        notes = f"database connections: not counted ({exc})"
    return Comparison(name=name, flowplatform=fp, floor=fl, rounds=pairs, notes=notes)


def flowplatform_side(label: str, lua: str) -> Target:
    return Target(label=label, server=lambda s: s.flowplatform, lua=lua)


def floor_side(label: str, lua: str) -> Target:
    return Target(label=label, server=lambda s: s.floor, lua=lua, side="floor")


FLOOR_INSERT_LUA = """
function body()
  local i = next_n()
  return string.format('{"group": "%s", "name": "task_%d", "idx": %d, "status": "completed", '
    .. '"payload": {"n": %d}}', GROUP, i % 10, i, i)
end
""" + lua_request("POST", "/rows", body_expr="body()")


def floor_insert_target(group: uuid.UUID) -> Target:
    """The floor's insert: one small body validated by a plain Serializer, one INSERT."""
    return floor_side(
        "floor POST /rows (1 insert)", f"GROUP = {lua_string(str(group))}\n" + FLOOR_INSERT_LUA
    )


# --- output ------------------------------------------------------------------------------------


def print_header(title: str, servers: Servers, *, seconds: float, connections: int) -> None:
    print(
        f"\n== {title}: {servers.mode} x{servers.workers} workers per server, "
        f"{connections} connections, {seconds:g}s per side (wrk -t{WRK_THREADS}) ==",
        flush=True,
    )


def print_table(comparisons: Sequence[Comparison]) -> None:
    head = (
        f"{'benchmark':<58} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'vs floor':>9} {'app CPU':>8} {'db CPU':>7} {'CPU vs':>7}"
    )
    print(head)
    print("-" * len(head))
    for comparison in comparisons:
        rows = [(comparison.flowplatform, comparison.ratio, comparison.cpu_ratio)]
        if comparison.floor is not None:
            rows.append((comparison.floor, None, None))
        for result, ratio, cpu_ratio in rows:
            shown = f"{ratio:9.0%}" if ratio is not None else ""
            cpu_shown = f"{cpu_ratio:7.0%}" if cpu_ratio is not None else ""
            print(
                f"{result.label:<58} {result.rps:8.0f} {result.p50_ms:8.1f} {result.p99_ms:8.1f}"
                f" {result.errors:7d} {shown:>9} {result.app_cpu_ms:8.2f} {result.db_cpu_ms:7.2f}"
                f" {cpu_shown:>7}"
            )
        if comparison.notes:
            print(f"  {comparison.notes}")
    sys.stdout.flush()


def emit_json(path: str | None, payload: dict[str, Any]) -> None:
    """Append one JSON line (for ``bench/run_all.py``'s summary)."""
    if not path:
        return
    with open(path, "a") as out:
        out.write(json.dumps(payload) + "\n")


def report(
    comparisons: Sequence[Comparison],
    *,
    json_path: str | None,
    mode: str,
    workers: int,
    connections: int,
) -> None:
    """Print ``comparisons`` as a table and append each to ``json_path`` (if given)."""
    print_table(comparisons)
    for comparison in comparisons:
        emit_json(
            json_path,
            comparison_json(comparison, mode=mode, workers=workers, connections=connections),
        )


def comparison_json(comparison: Comparison, **extra: Any) -> dict[str, Any]:
    def side(result: LoadResult | None) -> dict[str, Any] | None:
        if result is None:
            return None
        return {
            "label": result.label,
            "rps": round(result.rps, 1),
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "errors": result.errors,
            "requests": result.requests,
            "app_cpu_ms": round(result.app_cpu_ms, 2),
            "db_cpu_ms": round(result.db_cpu_ms, 2),
        }

    return {
        "name": comparison.name,
        "flowplatform": side(comparison.flowplatform),
        "floor": side(comparison.floor),
        "ratio": comparison.ratio,
        "cpu_ratio": comparison.cpu_ratio,
        "notes": comparison.notes,
        **extra,
    }


# --- command line ------------------------------------------------------------------------------


def http_parser(description: str, *, seconds: float = 20, connections: int = 16) -> Any:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--seconds",
        type=float,
        default=seconds,
        help=f"measured seconds per side and scenario, split over --rounds (default {seconds:g})",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=connections,
        help=f"concurrent wrk connections (default {connections})",
    )
    parser.add_argument(
        "--mode",
        choices=["gunicorn", "uvicorn", "both"],
        default="gunicorn",
        help="serving: gunicorn sync workers (WSGI), uvicorn workers (ASGI), or both in turn",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes per server (default per mode)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per side")
    parser.add_argument("--no-redis", action="store_true", help="no channel layer (REDIS_URL)")
    parser.add_argument("--json", help="append result lines (JSON) to this file")
    return parser


def modes(args: Any) -> list[tuple[str, int]]:
    chosen = ["gunicorn", "uvicorn"] if args.mode == "both" else [args.mode]
    return [(mode, args.workers or DEFAULT_WORKERS[mode]) for mode in chosen]


def check_wrk() -> None:
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        sys.exit("wrk is not installed (apt-get install wrk)")


# --- DAGs --------------------------------------------------------------------------------------


def layered(total: int, width: int) -> dict[str, list[str]]:
    """One root, then layers of ``width`` tasks each depending on two of the layer above:
    the root's downstream closure is every other task."""
    shape: dict[str, list[str]] = {"root": []}
    previous = ["root"]
    index = 0
    while len(shape) < total:
        layer = []
        for i in range(min(width, total - len(shape))):
            name = f"t{index}"
            index += 1
            shape[name] = sorted({previous[i % len(previous)], previous[(i + 1) % len(previous)]})
            layer.append(name)
        previous = layer
    return shape


def complete_in_process(organization: Any) -> None:
    """Run every queued ``noop`` task of ``organization`` (and what they unblock) to
    ``completed`` through the engine, in this process (claim + report, as workers would)."""
    from executions.engine import leases
    from executions.engine import reports as task_executions
    from flowplatform.authentication import principal_for_key
    from flowplatform.models import ApiKey

    principal = principal_for_key(
        ApiKey.objects.filter(organization=organization, kind="service").first()
    )
    while True:
        claimed = leases.claim_task_executions(
            organization=organization, worker_id="bench", executors=["noop"], limit=50
        )
        if not claimed:
            return
        for item in claimed:
            task_executions.report_task_execution(
                principal=principal,
                data={
                    "flow_execution_id": item["flow_execution_id"],
                    "task_name": item["task_name"],
                    "task_execution_idx": item["task_execution_idx"],
                    "status": "completed",
                    "output": {"n": item["task_name"]},
                    "worker_id": "bench",
                },
            )
