"""How flows, executions and task records look on the wire (API responses and events)."""

from __future__ import annotations

from typing import Any

from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution, TaskStatus
from flowplatform.representation import iso, iso_sql, json_object_sql, uid, uid_sql


def flow_data(flow: Flow) -> dict[str, Any]:
    return {
        "id": uid(flow.id),
        "organization_id": uid(flow.organization_id),
        "display_name": flow.display_name,
        "description": flow.description,
        "status": flow.status,
        "version": flow.version,
        "definition": flow.definition,
        "tags": flow.tags,
        "created_at": iso(flow.created_at),
        "updated_at": iso(flow.updated_at),
        "modified_by": flow.modified_by,
        "deleted": flow.deleted,
    }


def flow_version_data(version: FlowVersion) -> dict[str, Any]:
    return {
        "id": uid(version.id),
        "organization_id": uid(version.organization_id),
        "flow_id": uid(version.flow_id),
        "version": version.version,
        "definition": version.definition,
        "created_at": iso(version.created_at),
        "created_by": version.created_by,
    }


def flow_execution_data(execution: FlowExecution) -> dict[str, Any]:
    return {
        "id": uid(execution.id),
        "organization_id": uid(execution.organization_id),
        "flow_id": uid(execution.flow_id),
        "flow_version": execution.flow_version,
        "status": execution.status,
        "input": execution.input,
        "created_at": iso(execution.created_at),
        "updated_at": iso(execution.updated_at),
        "modified_by": execution.modified_by,
        "started_at": iso(execution.started_at),
        "completed_at": iso(execution.completed_at),
    }


def task_execution_data(task: TaskExecution) -> dict[str, Any]:
    return {
        "id": uid(task.id),
        "organization_id": uid(task.organization_id),
        "flow_execution_id": uid(task.flow_execution_id),
        "task_name": task.task_name,
        "task_execution_idx": task.task_execution_idx,
        "status": task.status,
        "input": task.input,
        "output": task.output,
        "error": task.error,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "modified_by": task.modified_by,
        "started_at": iso(task.started_at),
        "completed_at": iso(task.completed_at),
        "edited_status": task.edited_status,
        "stale_status": task.stale_status,
        "stale_reason": task.stale_reason,
        "task_executor_name": task.task_executor_name,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
    }


def task_execution_data_sql(alias: str, *, ordered: bool = False) -> str:
    """PostgreSQL: a ``jsonb`` expression equal to ``task_execution_data`` of the row
    ``alias`` of the task execution table (``json`` with its keys in order if ``ordered``)."""
    t = alias
    return json_object_sql(
        {
            "id": uid_sql(f"{t}.id"),
            "organization_id": uid_sql(f"{t}.organization_id"),
            "flow_execution_id": uid_sql(f"{t}.flow_execution_id"),
            "task_name": f"{t}.task_name",
            "task_execution_idx": f"{t}.task_execution_idx",
            "status": f"{t}.status",
            "input": f"{t}.input",
            "output": f"{t}.output",
            "error": f"{t}.error",
            "created_at": iso_sql(f"{t}.created_at"),
            "updated_at": iso_sql(f"{t}.updated_at"),
            "modified_by": f"{t}.modified_by",
            "started_at": iso_sql(f"{t}.started_at"),
            "completed_at": iso_sql(f"{t}.completed_at"),
            "edited_status": f"{t}.edited_status",
            "stale_status": f"{t}.stale_status",
            "stale_reason": f"{t}.stale_reason",
            "task_executor_name": f"{t}.task_executor_name",
            "attempt": f"{t}.attempt",
            "max_attempts": f"{t}.max_attempts",
        },
        ordered=ordered,
    )


def task_status_data(row: TaskStatus) -> dict[str, Any]:
    return {
        "id": uid(row.id),
        "organization_id": uid(row.organization_id),
        "flow_execution_id": uid(row.flow_execution_id),
        "task_name": row.task_name,
        "status": row.status,
        "created_at": iso(row.created_at),
    }


def task_status_data_sql(alias: str = "") -> str:
    """PostgreSQL: a ``jsonb`` expression equal to ``task_status_data`` of the row ``alias``
    of the task status table (its bare columns, e.g. in a ``RETURNING``, without one)."""
    t = f"{alias}." if alias else ""
    return json_object_sql(
        {
            "id": uid_sql(f"{t}id"),
            "organization_id": uid_sql(f"{t}organization_id"),
            "flow_execution_id": uid_sql(f"{t}flow_execution_id"),
            "task_name": f"{t}task_name",
            "status": f"{t}status",
            "created_at": iso_sql(f"{t}created_at"),
        }
    )
