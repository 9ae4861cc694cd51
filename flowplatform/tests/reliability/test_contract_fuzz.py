"""Row 1 — contract fuzzing: schemathesis against the live server's own /api/openapi.json.

A real uvicorn process on a free loopback port serves the test database; ``st run`` fuzzes
every operation with every check (``--checks all``: not_a_server_error,
status_code_conformance, content_type_conformance, response_headers_conformance,
response_schema_conformance, negative_data_rejection, positive_data_acceptance,
missing_required_header, unsupported_method, allow_header_conformance, use_after_free,
ensure_resource_availability, ignored_auth, object_level_authorization), once with a user key
and once with a service key. Seeded ids make most generated ids real. Figure: requests
generated per key, failures (0).

``RELIABILITY_FUZZ_EXAMPLES`` raises the examples per operation for a longer local run.
"""

from __future__ import annotations

import os

import pytest

from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.fuzzing import run_schemathesis, seed, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "5"))
MIN_GENERATED = 500  # per key; the two runs together must pass 1,000


@pytest.mark.parametrize("kind", ["user", "service"])
def test_live_server_conforms_to_its_own_schema(e2e_server, tenant, tmp_path, kind):
    server = e2e_server()
    data = seed(tenant.organization)
    config = write_config(tmp_path / "schemathesis.toml", data, max_examples=MAX_EXAMPLES)
    key = tenant.user_key if kind == "user" else tenant.service_key
    result = run_schemathesis(base_url=server.url, key=key, config=config, workdir=tmp_path)
    figure(
        1,
        f"schemathesis --checks all, {kind} key",
        generated=result.generated,
        exit_code=result.returncode,
        failures=0 if result.returncode == 0 else "see report",
    )
    report = tmp_path / "st-output.txt"
    assert result.returncode == 0, f"{report}\n{result.failures}\n--- server ---\n{server.output()}"
    assert result.generated >= MIN_GENERATED, result.output[-3000:]
