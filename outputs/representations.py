"""How task outputs look on the wire (API responses and events)."""

from __future__ import annotations

from typing import Any

from flowplatform.representation import iso, iso_sql, json_object_sql, uid, uid_sql
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


def task_output_data_sql(alias: str) -> str:
    """PostgreSQL: a ``jsonb`` expression equal to ``task_output_data`` of the row ``alias``
    of the task output table."""
    o = alias
    return json_object_sql(
        {
            "id": uid_sql(f"{o}.id"),
            "organization_id": uid_sql(f"{o}.organization_id"),
            "flow_execution_id": uid_sql(f"{o}.flow_execution_id"),
            "flow_version": f"{o}.flow_version",
            "task_name": f"{o}.task_name",
            "summary": f"{o}.summary",
            "output": f"{o}.output",
            "tags": f"{o}.tags",
            "status": f"{o}.status",
            "created_at": iso_sql(f"{o}.created_at"),
            "updated_at": iso_sql(f"{o}.updated_at"),
            "modified_by": f"{o}.modified_by",
            "edited_status": f"{o}.edited_status",
            "stale_status": f"{o}.stale_status",
        }
    )
