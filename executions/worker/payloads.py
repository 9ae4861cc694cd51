"""Typed payloads of the worker protocol, separate from the server's DRF serializers.

The worker is an HTTP client of the API (it never imports Django), so the shapes it sends
and receives are written down here once: dataclasses that parse what the server answers
and build what the worker reports.  Parsing is strict about the few fields the worker
cannot do without (ids, task name, index, executor) and lenient about everything else,
so additive server changes never break a deployed worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TerminalStatus = Literal["completed", "failed", "cancelled"]
TERMINAL_STATUSES: tuple[TerminalStatus, ...] = ("completed", "failed", "cancelled")

# Leases the server did not describe are assumed to be a minute long: heartbeats then go
# out every 20 s, well inside any lease a sane server would grant.
DEFAULT_LEASE_SECONDS = 60.0
MAX_TRACEBACK_CHARS = 20_000
MAX_MESSAGE_CHARS = 4_000


class PayloadError(ValueError):
    """The server answered something the worker cannot interpret."""


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    # ``bool`` is an ``int``: an index of ``true`` is a server bug, not index 1.
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise PayloadError(f"claimed task is missing a valid {key!r}: {value!r}")
    return value


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _optional_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ClaimedTask:
    """One task execution handed to this worker by ``POST /api/task-executions/claim``."""

    id: str
    flow_execution_id: str
    task_name: str
    task_execution_idx: int
    task_executor_name: str
    input: Any = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    attempt: int = 1
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    lease_expires_at: str | None = None
    organization_id: str | None = None
    flow_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> ClaimedTask:
        if not isinstance(data, Mapping):
            raise PayloadError(f"claimed task is not an object: {data!r}")
        lease = _optional_number(data, "lease_seconds")
        timeout = _optional_number(data, "timeout_seconds")
        return cls(
            id=_require(data, "id", str),
            flow_execution_id=_require(data, "flow_execution_id", str),
            task_name=_require(data, "task_name", str),
            task_execution_idx=_require(data, "task_execution_idx", int),
            task_executor_name=_require(data, "task_executor_name", str),
            input=data.get("input"),
            lease_seconds=lease if lease and lease > 0 else DEFAULT_LEASE_SECONDS,
            attempt=_optional_int(data, "attempt") or 1,
            max_attempts=_optional_int(data, "max_attempts"),
            # A zero or negative timeout cannot be meant literally: treat it as "none".
            timeout_seconds=timeout if timeout and timeout > 0 else None,
            lease_expires_at=_optional_str(data, "lease_expires_at"),
            organization_id=_optional_str(data, "organization_id"),
            flow_id=_optional_str(data, "flow_id"),
            raw=dict(data),
        )

    def describe(self) -> str:
        """The identity used in every log line about this task."""
        return (
            f"task={self.task_name} flow_execution={self.flow_execution_id} "
            f"idx={self.task_execution_idx}"
        )


@dataclass(frozen=True)
class HeartbeatAnswer:
    """The answer to ``POST /api/task-executions/{id}/heartbeat``."""

    lease_expires_at: str | None
    cancel_requested: bool

    @classmethod
    def from_json(cls, data: Any) -> HeartbeatAnswer:
        if not isinstance(data, Mapping):
            raise PayloadError(f"heartbeat answer is not an object: {data!r}")
        return cls(
            lease_expires_at=_optional_str(data, "lease_expires_at"),
            cancel_requested=data.get("cancel_requested") is True,
        )


def truncate_middle(text: str, limit: int) -> str:
    """Shorten ``text`` keeping both ends: a traceback's first frames say where the task
    started, its last lines say what went wrong; the middle is the least useful part."""
    if len(text) <= limit:
        return text
    head = limit // 10
    marker = f"\n... [{len(text) - limit} characters truncated] ...\n"
    tail = max(limit - head - len(marker), 0)
    return text[:head] + marker + text[len(text) - tail :]


@dataclass(frozen=True)
class TaskError:
    """The ``error`` object of a failed task execution: ``{message, type, traceback}``."""

    message: str
    type: str
    traceback: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "message": truncate_middle(self.message, MAX_MESSAGE_CHARS),
            "type": self.type,
            "traceback": truncate_middle(self.traceback, MAX_TRACEBACK_CHARS),
        }


@dataclass(frozen=True)
class TaskExecutionReport:
    """Body of ``POST /api/task-executions``: the terminal state of one claimed task.

    Identified by ``(flow_execution_id, task_name, task_execution_idx)``, the server's
    idempotency key, so sending the same report twice is harmless.
    """

    flow_execution_id: str
    task_name: str
    task_execution_idx: int
    status: TerminalStatus
    worker_id: str
    output: Any = None
    error: TaskError | None = None
    # The worker's next work, claimed with the report: executors it serves (none: no claim).
    claim_executors: tuple[str, ...] = ()
    claim_limit: int = 1

    def to_json(self) -> dict[str, Any]:
        body = {
            "flow_execution_id": self.flow_execution_id,
            "task_name": self.task_name,
            "task_execution_idx": self.task_execution_idx,
            "status": self.status,
            "output": self.output,
            "error": self.error.to_json() if self.error is not None else None,
            "worker_id": self.worker_id,
        }
        if self.claim_executors:
            body["claim"] = {"executors": list(self.claim_executors), "limit": self.claim_limit}
        return body


@dataclass(frozen=True)
class TaskOutputReport:
    """Body of ``POST /api/task-outputs``: the displayable result of a task."""

    flow_execution_id: str
    task_name: str
    status: TerminalStatus
    summary: Any = field(default_factory=dict)
    output: Any = None
    tags: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "flow_execution_id": self.flow_execution_id,
            "task_name": self.task_name,
            "summary": self.summary,
            "output": self.output,
            "tags": self.tags,
            "status": self.status,
        }


@dataclass(frozen=True)
class TaskStatusUpdate:
    """One item of ``POST /api/flow-executions/{id}/task-status``."""

    task_name: str
    status: str

    def to_json(self) -> dict[str, str]:
        return {"task_name": self.task_name, "status": self.status}
