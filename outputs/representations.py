"""How task outputs look on the wire (API responses and events)."""

from __future__ import annotations

from typing import Any

from flowplatform.representation import iso, uid
from outputs.models import TaskOutput


def task_output_data(row: TaskOutput) -> dict[str, Any]:
    return {
        "id": uid(row.id),
        "organization_id": uid(row.organization_id),
        "flow_execution_id": uid(row.flow_execution_id),
        "flow_version": row.flow_version,
        "task_name": row.task_name,
        "summary": row.summary,
        "output": row.output,
        "tags": row.tags,
        "status": row.status,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "modified_by": row.modified_by,
        "edited_status": row.edited_status,
        "stale_status": row.stale_status,
    }
