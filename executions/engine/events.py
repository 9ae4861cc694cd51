"""One outbox batch per engine operation.

Engine functions append ``EventSpec``s here instead of calling ``publish`` one by one; the
outermost ``engine_operation`` publishes the whole batch once, still inside its transaction
(so the outbox rows commit or roll back with the change and are pushed after commit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from django.db import transaction

from executions.models import FlowExecution, TaskExecution
from executions.representations import flow_execution_data, task_execution_data
from realtime.publisher import EventSpec, publish, publish_query

P = ParamSpec("P")
R = TypeVar("R")

_batch: ContextVar[list[EventSpec] | None] = ContextVar("engine_event_batch", default=None)


@contextmanager
def collecting() -> Iterator[list[EventSpec]]:
    """Collect events until the outermost block ends, then publish them in one call.

    Nested blocks share the outer batch. Nothing is published if the block raises: the
    transaction it runs in rolls back anyway.
    """
    batch = _batch.get()
    if batch is not None:
        yield batch
        return
    batch = []
    token = _batch.set(batch)
    try:
        yield batch
        publish(batch)
    finally:
        _batch.reset(token)


def engine_operation(fn: Callable[P, R]) -> Callable[P, R]:
    """``transaction.atomic`` plus one event batch: the shape of every engine entry point."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with transaction.atomic(), collecting():
            return fn(*args, **kwargs)

    return wrapper


def emit(*events: EventSpec) -> None:
    """Queue events in the current batch (published at once when there is none)."""
    batch = _batch.get()
    if batch is None:
        publish(list(events))
    else:
        batch.extend(events)


def emit_query(*, ctes: str, select: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PostgreSQL: publish the events one statement renders (``publisher.publish_query``),
    after the events queued so far, which are published first so that event ids keep the
    order of emission. Returns the new events' messages."""
    batch = _batch.get()
    if batch:
        publish(list(batch))
        batch.clear()
    return publish_query(ctes=ctes, select=select, params=params)


def task_event(kind: str, task: TaskExecution, *, flow_id: Any, data: Any = None) -> EventSpec:
    """``task_execution.<kind>`` carrying the task execution as the API renders it."""
    return EventSpec(
        type=f"task_execution.{kind}",
        organization_id=task.organization_id,
        flow_id=flow_id,
        flow_execution_id=task.flow_execution_id,
        task_name=task.task_name,
        data=task_execution_data(task) if data is None else data,
    )


def flow_status_event(execution: FlowExecution) -> EventSpec:
    return EventSpec(
        type="flow_execution.status_changed",
        organization_id=execution.organization_id,
        flow_id=execution.flow_id,
        flow_execution_id=execution.id,
        data=flow_execution_data(execution),
    )
