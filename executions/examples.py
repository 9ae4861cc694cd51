"""The example flow the demo setup loads: a small diamond that runs offline, unattended.

``prepare`` shapes the input; ``check_rows`` (JSON Schema validation) and ``total_fees`` (an
allow-listed Python callable) run in parallel on its output; ``report`` joins both; ``done``
closes the run. Only built-in executors a local worker serves, and no ``human_review``, so an
execution started with ``EXAMPLE_INPUT`` completes on its own.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from executions.enums import FlowStatus
from executions.models import Flow
from executions.selectors import flows_of
from executions.services.flows import create_flow, set_flow_definition
from flowplatform.models import Organization

EXAMPLE_FLOW_NAME = "Example: prepare, validate and review"

EXAMPLE_DEFINITION: dict[str, Any] = {
    "description": "Shape the input, validate its rows and add up fees in parallel, report.",
    "tasks": [
        {
            "name": "prepare",
            "task_executor_name": "transform",
            "parameters": {
                "template": {
                    "rows": "{{input.rows}}",
                    "owner": "{{input.owner}}",
                    "fees": "{{input.fees}}",
                }
            },
        },
        {
            "name": "check_rows",
            "task_executor_name": "validate",
            "parameters": {
                "rows": "{{prepare.output.rows}}",
                "schema": {
                    "type": "object",
                    "required": ["id", "amount"],
                    "properties": {
                        "id": {"type": "integer"},
                        "amount": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
        {
            "name": "total_fees",
            "task_executor_name": "python",
            "parameters": {
                "callable": "executions.worker.examples:add",
                "kwargs": {
                    "a": "{{prepare.output.fees.base}}",
                    "b": "{{prepare.output.fees.extra}}",
                },
            },
        },
        {
            "name": "report",
            "task_executor_name": "transform",
            "parameters": {
                "template": {
                    "owner": "{{prepare.output.owner}}",
                    "valid_rows": "{{check_rows.output.valid}}",
                    "invalid_rows": "{{check_rows.output.invalid}}",
                    "total_fees": "{{total_fees.output}}",
                    "headline": "{{prepare.output.owner}}: fees {{total_fees.output}}",
                }
            },
        },
        {
            "name": "done",
            "task_executor_name": "noop",
            "parameters": {"output": {"finished": True}},
            "depends_on": ["report"],
        },
    ],
}

EXAMPLE_INPUT: dict[str, Any] = {
    "owner": "ada",
    "rows": [
        {"id": 1, "amount": 12.5},
        {"id": 2, "amount": -3},
        {"id": 3, "amount": 7},
    ],
    "fees": {"base": 10, "extra": 2.5},
}


@transaction.atomic
def ensure_example_flow(*, organization: Organization, actor: str) -> Flow:
    """The organization's example flow, created on first call (idempotent, found by name).

    When the stored definition differs from this module's (an upgrade changed it), the
    current one becomes the flow's next version.
    """
    existing = (
        flows_of(organization=organization)
        .filter(display_name=EXAMPLE_FLOW_NAME)
        .order_by("created_at", "id")
        .first()
    )
    if existing is None:
        return create_flow(
            organization=organization,
            actor=actor,
            display_name=EXAMPLE_FLOW_NAME,
            description=(
                "Runs offline with the built-in executors. Example input: "
                + json.dumps(EXAMPLE_INPUT)
            ),
            status=FlowStatus.PUBLISHED,
            tags=["example"],
            definition=EXAMPLE_DEFINITION,
        )
    # An unchanged definition creates no version, so this is a no-op on every later start.
    return set_flow_definition(
        organization=organization, flow_id=existing.id, actor=actor, definition=EXAMPLE_DEFINITION
    )
