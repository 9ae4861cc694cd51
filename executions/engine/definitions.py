"""Parsed flow definitions, cached in-process.

A ``FlowVersion`` never changes, so its parsed ``FlowDefinition`` is cached by
``(flow_id, version)`` for the life of the process: the engine loads each definition from the
database once, not once per report.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from uuid import UUID

from executions import dsl
from executions.models import Flow, FlowExecution, FlowVersion
from flowplatform.exceptions import BadRequest

MAX_CACHED = 512

_lock = threading.Lock()
_cache: OrderedDict[tuple[str, int], dsl.FlowDefinition] = OrderedDict()


def definition_of(execution: FlowExecution) -> dsl.FlowDefinition:
    """The definition ``execution`` is pinned to (its flow at ``flow_version``)."""
    return get_definition(flow_id=execution.flow_id, version=execution.flow_version)


def get_definition(*, flow_id: UUID, version: int) -> dsl.FlowDefinition:
    key = (str(flow_id), int(version))
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    definition = _load(flow_id=flow_id, version=version)
    with _lock:
        _cache[key] = definition
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
    return definition


def _load(*, flow_id: UUID, version: int) -> dsl.FlowDefinition:
    raw = (
        FlowVersion.objects.filter(flow_id=flow_id, version=version)
        .values_list("definition", flat=True)
        .first()
    )
    if raw is None:
        # Older rows may predate their FlowVersion: the flow's own current definition.
        raw = (
            Flow.objects.filter(id=flow_id, version=version)
            .values_list("definition", flat=True)
            .first()
        )
    if raw is None:
        raise BadRequest(f"Flow {flow_id} has no version {version}.")
    try:
        return dsl.validate_definition(raw)
    except dsl.DefinitionError as exc:  # stored definitions were validated on save
        raise BadRequest(f"The flow's version {version} is not a valid definition: {exc}") from exc


def check_task_names(
    definition: dsl.FlowDefinition, located: Iterable[tuple[Sequence[str | int], str]]
) -> None:
    """``BadRequest`` (400, DESIGN §4) naming every task of ``located`` (``(loc, name)``
    pairs) that ``definition`` does not define."""
    details = [
        {"loc": list(loc), "msg": "Unknown task.", "type": "unknown"}
        for loc, name in located
        if not definition.defines(name)
    ]
    if details:
        raise BadRequest(
            f"Unknown task name(s) for this flow execution's flow version: {len(details)}.",
            details=details,
        )
