"""Running schemathesis (``st run``) against a live server's own ``/api/openapi.json``.

``seed(tenant)`` makes ids that exist (flows, flow executions, running and queued task
executions, task outputs, and throw-away flows and executions for the DELETE operations);
``write_config`` turns them into a ``schemathesis.toml`` whose parameter dictionaries make
most generated path and body ids real, so the fuzzer gets past the 404 into the logic;
``run_schemathesis`` runs every check (``--checks all``) and returns what it reported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executions.engine import leases
from executions.models import TaskExecution
from executions.tests.factories import make_flow, make_flow_execution
from outputs.models import TaskOutput

ROOT = Path(__file__).resolve().parents[3]
HOOKS_MODULE = "flowplatform.tests.reliability.fuzz_hooks"
TASK_NAMES = ["a", "b", "c", "d"]  # executions.tests.factories.DIAMOND

# 400 is the API's answer to a request that fits the schema but not the data: an unknown task
# name for the flow, a definition the DSL rejects, an unknown cursor (DESIGN §4). Any 422 to a
# schema-valid request still fails the run: that is the schema lying.
POSITIVE_EXPECTED = ["2xx", "3xx", "400", "401", "403", "404", "409"]


@dataclass
class Seeded:
    flows: list[str] = field(default_factory=list)
    victim_flows: list[str] = field(default_factory=list)
    flow_executions: list[str] = field(default_factory=list)
    victim_flow_executions: list[str] = field(default_factory=list)
    task_executions: list[str] = field(default_factory=list)
    task_outputs: list[str] = field(default_factory=list)


def seed(organization: Any) -> Seeded:
    """Rows of ``organization`` for the fuzzer to aim at (committed: call from a
    ``transaction=True`` test)."""
    data = Seeded()
    flows = [make_flow(organization, display_name=f"fuzz-{i}") for i in range(2)]
    data.flows = [str(f.id) for f in flows]
    data.victim_flows = [
        str(make_flow(organization, display_name=f"victim-{i}").id) for i in range(20)
    ]
    executions = [make_flow_execution(flows[i % 2]) for i in range(4)]
    data.flow_executions = [str(e.id) for e in executions]
    data.victim_flow_executions = [str(make_flow_execution(flows[0]).id) for _ in range(20)]
    # Half the queued roots become running under a lease (heartbeat/release have a target).
    leases.claim_task_executions(
        organization=organization, worker_id="fuzz-worker", executors=["noop"], limit=3
    )
    data.task_executions = [
        str(pk)
        for pk in TaskExecution.objects.filter(organization=organization).values_list(
            "id", flat=True
        )
    ]
    data.task_outputs = [
        str(pk)
        for pk in TaskOutput.objects.filter(organization=organization).values_list("id", flat=True)
    ]
    return data


def write_config(path: Path, data: Seeded, *, max_examples: int) -> Path:
    def values(items: list[Any]) -> str:
        return json.dumps(items)

    def bind(name: str, probability: float = 0.9) -> str:
        return f'{{ dictionary = "{name}", probability = {probability} }}'

    text = f"""
[generation]
max-examples = {max_examples}
# PostgreSQL stores no NUL character, in text or jsonb: the API refuses U+0000 in every
# string with a 422 (flowplatform.parsers), as its description says.
allow-x00 = false
database = "none"

[checks.positive_data_acceptance]
expected-statuses = {values(POSITIVE_EXPECTED)}

[dictionaries.flows]
values = {values(data.flows)}
[dictionaries.victim_flows]
values = {values(data.victim_flows)}
[dictionaries.flow_executions]
values = {values(data.flow_executions)}
[dictionaries.victim_flow_executions]
values = {values(data.victim_flow_executions)}
[dictionaries.task_executions]
values = {values(data.task_executions)}
[dictionaries.task_outputs]
values = {values(data.task_outputs or [data.flows[0]])}
[dictionaries.task_names]
values = {values(TASK_NAMES)}
[dictionaries.versions]
values = [1]

[parameters]
"path.flow_id" = {bind("flows")}
"path.flow_execution_id" = {bind("flow_executions")}
"path.task_execution_id" = {bind("task_executions")}
"path.task_output_id" = {bind("task_outputs")}
"path.version" = {bind("versions")}
"body.flow_id" = {bind("flows")}
"body.flow_execution_id" = {bind("flow_executions")}
"body.id" = {bind("task_executions", 0.8)}
"body.task_name" = {bind("task_names", 0.8)}
"body.statuses[*].task_name" = {bind("task_names", 0.8)}

[[operations]]
include-method = "DELETE"
include-path = "/api/flows/{{flow_id}}"
parameters = {{ "path.flow_id" = {bind("victim_flows", 1.0)} }}

[[operations]]
include-method = "DELETE"
include-path = "/api/flow-executions/{{flow_execution_id}}"
parameters = {{ "path.flow_execution_id" = {bind("victim_flow_executions", 1.0)} }}
"""
    path.write_text(text)
    return path


@dataclass
class FuzzResult:
    returncode: int
    generated: int
    output: str

    @property
    def failures(self) -> str:
        """The failure and error sections of the report (what to read when it fails)."""
        start = self.output.find("=== ERRORS ===")
        if start < 0:
            start = self.output.find("=== FAILURES ===")
        return self.output[start:] if start >= 0 else self.output[-6000:]


def run_schemathesis(
    *,
    base_url: str,
    key: str,
    config: Path,
    workdir: Path,
    workers: int = 4,
    timeout: float = 600,
    extra: tuple[str, ...] = (),
) -> FuzzResult:
    """``st run`` with every check against ``base_url``'s schema, authenticated with ``key``."""
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "--config-file", str(config), "run", f"{base_url}/api/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: Bearer {key}",
        "--workers", str(workers),
        "--request-timeout", "30",
        "--no-color",
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS_MODULE,
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "COLUMNS": "160",
    }
    completed = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = completed.stdout + completed.stderr
    (workdir / "st-output.txt").write_text(output)
    match = re.search(r"(\d+) generated", output)
    return FuzzResult(completed.returncode, int(match.group(1)) if match else 0, output)
