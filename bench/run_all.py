"""Run every benchmark in sequence and print one summary table.

    .venv/bin/python bench/run_all.py [--seconds 10] [--connections 16]
        [--mode gunicorn|uvicorn|both] [--skip NAME ...] [--only NAME ...]

Each benchmark runs as its own process (its output is shown as it goes); the HTTP ones
append their figures to a JSON-lines file that the summary reads. The others
(``task_outputs_list``, ``ws_fanout``, ``engine_throughput``) print their own tables; their
headline figures are picked out of their output for the summary. Bounded: every benchmark
has a timeout (``--timeout``, default 600 s) and the defaults take about 15–25 minutes in
all on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HTTP = [
    "task_executions_create",
    "task_executions_edit",
    "task_status",
    "task_outputs_create",
    "task_executions_list",
]
OTHER = ["task_outputs_list", "ws_fanout", "engine_throughput"]

TARGETS = {
    "task_executions.create": "≥ 70 % of floor, p99 < 50 ms",
    "task_executions.list": "≥ 100 % of floor",
    "task_status.100.c1": "p50 < 50 ms",
}


def run(name: str, args: list[str], timeout: float) -> str:
    command = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args]
    print(f"\n##### {name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
            if time.monotonic() - started > timeout:
                raise subprocess.TimeoutExpired(command, timeout)
        process.wait(timeout=max(1, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(30)
        lines.append(f"{name}: timed out after {timeout:.0f} s\n")
    print(f"##### {name}: {time.monotonic() - started:.0f} s, exit {process.returncode}")
    return "".join(lines)


def pick(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mode", choices=["gunicorn", "uvicorn", "both"], default="gunicorn")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=HTTP + OTHER)
    parser.add_argument("--skip", nargs="*", default=[], choices=HTTP + OTHER)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--ws-clients", type=int, default=1000)
    args = parser.parse_args()
    chosen = [n for n in HTTP + OTHER if (not args.only or n in args.only) and n not in args.skip]
    results_path = Path(tempfile.mkstemp(prefix="bench-results-", suffix=".jsonl")[1])
    common = [
        "--seconds", str(args.seconds), "--connections", str(args.connections),
        "--mode", args.mode, "--rounds", str(args.rounds), "--json", str(results_path),
    ]  # fmt: skip
    if args.workers:
        common += ["--workers", str(args.workers)]
    outputs: dict[str, str] = {}
    started = time.monotonic()
    for name in chosen:
        if name in HTTP:
            outputs[name] = run(name, common, args.timeout)
        elif name == "task_outputs_list":
            outputs[name] = run(name, ["--runs", "2"], args.timeout)
        elif name == "ws_fanout":
            outputs[name] = run(
                name, ["--clients", str(args.ws_clients), "--events", "20"], args.timeout
            )
        elif name == "engine_throughput":
            outputs[name] = run(name, [], args.timeout)
    rows = [json.loads(line) for line in results_path.read_text().splitlines() if line]
    results_path.unlink()
    print_summary(rows, outputs, elapsed=time.monotonic() - started)


def print_summary(rows: list[dict[str, Any]], outputs: dict[str, str], *, elapsed: float) -> None:
    print(f"\n=================== summary ({elapsed / 60:.1f} min) ===================")
    head = (
        f"{'benchmark':<50} {'mode':<9} {'c':>3} {'req/s':>7} {'p50':>7} {'p99':>7} {'err':>5}"
        f" {'floor r/s':>9} {'fl p50':>7} {'ratio':>6} {'CPU/req fp':>10} {'floor':>6}"
        f" {'CPU ratio':>9}  target"
    )
    print(head)
    print("-" * (len(head) + 24))
    for row in rows:
        fp, floor = row["flowplatform"], row["floor"] or {}
        ratio = f"{row['ratio']:.0%}" if row.get("ratio") is not None else ""
        cpu_ratio = f"{row['cpu_ratio']:.0%}" if row.get("cpu_ratio") is not None else ""
        fp_cpu = fp.get("app_cpu_ms", 0) + fp.get("db_cpu_ms", 0)
        floor_cpu = floor.get("app_cpu_ms", 0) + floor.get("db_cpu_ms", 0)
        print(
            f"{fp['label'][:50]:<50} {row['mode']:<9} {row['connections']:>3} {fp['rps']:>7.0f}"
            f" {fp['p50_ms']:>7.1f} {fp['p99_ms']:>7.1f} {fp['errors']:>5}"
            f" {floor.get('rps', 0):>9.0f} {floor.get('p50_ms', 0):>7.1f} {ratio:>6}"
            f" {fp_cpu:>10.2f} {floor_cpu:>6.2f} {cpu_ratio:>9}  {TARGETS.get(row['name'], '')}"
        )
    text = outputs.get("task_outputs_list", "")
    if text:
        line = pick(r"^(streamed .*)$", text)
        print(
            f"\nGET /api/task-outputs, 100,000 rows (runs, first byte ms, total ms, MB, RSS MB,"
            f" RSS growth MB): {line or 'see above'}   target: first byte < 100 ms, growth < 50 MB"
        )
    text = outputs.get("ws_fanout", "")
    if text:
        line = pick(r"^event receipt, all clients\s+(.*)$", text)
        delivered = pick(r"^(delivered .*?);", text)
        print(
            f"WebSocket fan-out (p50 p99 max ms): {line or 'see above'} ({delivered})"
            "   target: p99 < 250 ms"
        )
    text = outputs.get("engine_throughput", "")
    if text:
        print("engine_throughput (see its output above for the full figures):")
        for line in text.splitlines():
            if re.search(r"4 worker|overhead|mark stale|dry run|re-queue", line):
                print("  " + line.strip())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
