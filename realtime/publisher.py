"""The one way services announce state changes.

``publish`` writes outbox rows in the caller's transaction and pushes them to the channel
layer only after commit, so clients never see a state that later rolls back. Pushing is
best effort and never blocks or fails the request (see ``realtime.sender``): a failure is
logged and the events stay replayable from the outbox.

Each batch becomes one ``{"type": "events.batch", "events": [...]}`` message per group:
``flow.<flow_id>`` for every event of a flow, and ``summaries.<organization_id>`` for
task-output events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from flowplatform.representation import iso
from realtime.groups import flow_group, summaries_group
from realtime.models import Event
from realtime.sender import deliver

logger = logging.getLogger(__name__)

SUMMARY_EVENT_TYPES = frozenset({"task_output.created", "task_output.updated"})


@dataclass(frozen=True)
class EventSpec:
    type: str
    organization_id: UUID
    flow_id: UUID | None
    flow_execution_id: UUID | None = None
    task_name: str | None = None
    data: Any = None


def publish(events: Sequence[EventSpec]) -> list[Event]:
    """Record ``events`` in the outbox now and push them once the transaction commits.

    Must run inside the transaction that made the change; one batch is one push.
    """
    if not events:
        return []
    rows = [
        Event(
            type=e.type,
            organization_id=e.organization_id,
            flow_id=e.flow_id,
            flow_execution_id=e.flow_execution_id,
            task_name=e.task_name,
            data=e.data,
        )
        for e in events
    ]
    if connection.vendor == "postgresql":
        _insert_postgresql(rows)
    else:
        rows = Event.objects.bulk_create(rows)
        if rows and rows[0].id is None:  # backends without RETURNING ids
            rows = _reload_ids(rows)
    messages = [event_message(row) for row in rows]
    transaction.on_commit(lambda: push(messages), robust=True)
    return rows


# The whole batch travels as one JSON array parameter that PostgreSQL's JSON parser unpacks:
# for the large batches of staleness (~2,000 events) several times faster than the ORM's
# bulk INSERT (whose per-column array parameters PostgreSQL parses slowly), and for the
# small batches of every report it skips building the ORM query. Same rows, same ids
# (``RETURNING`` in input order), same ``created_at`` as ``bulk_create`` would give.
_INSERT_SQL = (
    "INSERT INTO {table} (type, organization_id, flow_id, flow_execution_id, task_name,"
    " created_at, data) SELECT e->>0, (e->>1)::uuid, (e->>2)::uuid, (e->>3)::uuid, e->>4,"
    " %s, e->5 FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS batch(e, n)"
    " ORDER BY n RETURNING id"
)


def _insert_postgresql(rows: list[Event]) -> None:
    now = timezone.now()
    payload = json.dumps(
        [
            [
                row.type,
                str(row.organization_id),
                None if row.flow_id is None else str(row.flow_id),
                None if row.flow_execution_id is None else str(row.flow_execution_id),
                row.task_name,
                row.data,
            ]
            for row in rows
        ],
        cls=Event._meta.get_field("data").encoder,  # type: ignore[attr-defined]
    )
    sql = _INSERT_SQL.format(table=connection.ops.quote_name(Event._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, payload])
        ids = [pk for (pk,) in cursor.fetchall()]
    for row, pk in zip(rows, ids, strict=True):
        row.id, row.created_at = pk, now


# Events rendered by the statement that makes the change: the rows it changes never reach
# Python. The caller's ``select`` (over its ``ctes``) yields one row per event; the
# statement answers with the events' messages as one JSON array (one parse, no per-row
# Python).
_INSERT_QUERY_SQL = """
WITH {ctes},
inserted AS (
    INSERT INTO {table} (type, organization_id, flow_id, flow_execution_id, task_name,
        created_at, data)
    SELECT e.type, e.organization_id, e.flow_id, e.flow_execution_id, e.task_name,
        %(event_created_at)s, e.data
    FROM ({select}) AS e ORDER BY e.ord
    RETURNING id, type, organization_id, flow_id, flow_execution_id, task_name, data
)
SELECT coalesce(json_agg(json_build_object('type', 'event', 'id', id, 'event_type', type,
    'organization_id', organization_id::text, 'flow_id', flow_id::text,
    'flow_execution_id', flow_execution_id::text, 'task_name', task_name,
    'created_at', %(event_created_at_text)s::text, 'data', data) ORDER BY id), '[]')::text
FROM inserted"""


def publish_query(*, ctes: str, select: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PostgreSQL: record as events the rows of one statement, in the caller's transaction,
    and push them once it commits. Returns their messages (``event_message``), in id order.

    ``select`` yields the columns ``type, organization_id, flow_id, flow_execution_id,
    task_name`` and ``data`` (``jsonb``, the resource as the API renders it), and ``ord``,
    the order their ids follow; it reads ``ctes`` (``name AS (…), …``), typically an
    ``UPDATE … RETURNING`` whose rows are the events: change and outbox rows are one
    statement. ``params`` are named (``%(name)s``); names starting ``event_`` are reserved.
    """
    now = timezone.now()
    sql = _INSERT_QUERY_SQL.format(
        ctes=ctes, select=select, table=connection.ops.quote_name(Event._meta.db_table)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "event_created_at": now, "event_created_at_text": iso(now)})
        (text,) = cursor.fetchone()
    messages: list[dict[str, Any]] = json.loads(text)
    if messages:
        transaction.on_commit(lambda: push(messages), robust=True)
    return messages


def _reload_ids(rows: list[Event]) -> list[Event]:
    last = list(Event.objects.order_by("-id")[: len(rows)])
    return list(reversed(last))


def event_message(event: Event) -> dict[str, Any]:
    """The JSON a WebSocket client receives for an event."""
    return {
        "type": "event",
        "id": event.id,
        "event_type": event.type,
        "organization_id": str(event.organization_id),
        "flow_id": str(event.flow_id) if event.flow_id else None,
        "flow_execution_id": str(event.flow_execution_id) if event.flow_execution_id else None,
        "task_name": event.task_name,
        "created_at": iso(event.created_at),
        "data": event.data,
    }


def push(messages: list[dict[str, Any]]) -> None:
    """Send messages to their groups; never raises and never waits for the network."""
    try:
        layer = get_channel_layer()
    except Exception:  # noqa: BLE001 - a misconfigured layer must not fail the request
        logger.exception("No channel layer; %d event(s) remain replayable", len(messages))
        return
    if layer is None or not messages:
        return
    deliver(layer, group_messages(messages))


def group_messages(messages: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """One ``events.batch`` message per group, events in id order within each."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["flow_id"]:
            by_group.setdefault(flow_group(message["flow_id"]), []).append(message)
        if message["event_type"] in SUMMARY_EVENT_TYPES:
            by_group.setdefault(summaries_group(message["organization_id"]), []).append(message)
    return [(group, {"type": "events.batch", "events": batch}) for group, batch in by_group.items()]
