"""The status history a worker keeps for the tasks it ran, posted in batches.

Each finished task adds its terminal status to the flow execution's history
(``POST /api/flow-executions/{id}/task-status``, at most 100 items per request). The history
is for people (the execution page, WebSocket watchers), not for the engine: the terminal
report already decided the task's fate. So statuses are buffered per flow execution and sent
by one background thread every ``flush_seconds``, one request per flow execution and
window rather than one per task; ``close()`` sends what is left. A failed post is logged and
dropped: history must never cost a task its result.

The server also sets the task's output to the status it receives (seed 004), so a status
reaches the output up to one window after the report. If the engine queued the task again
meanwhile (a retry), the output shows the earlier attempt's status until the new attempt is
claimed; the task executions themselves are never affected.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from executions.worker.client import ApiClient, ApiError
from executions.worker.payloads import TaskStatusUpdate

logger = logging.getLogger("flowplatform.worker")

MAX_BATCH = 100  # the endpoint's limit per request
DEFAULT_FLUSH_SECONDS = 0.5


class StatusHistory:
    """Buffers ``(flow execution, task, status)`` and posts them in per-execution batches."""

    def __init__(self, client: ApiClient, *, flush_seconds: float = DEFAULT_FLUSH_SECONDS):
        self.client = client
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._pending: defaultdict[str, list[TaskStatusUpdate]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="flowworker-status-history", daemon=True
        )
        self._thread.start()

    def add(self, flow_execution_id: str, task_name: str, status: str) -> None:
        with self._lock:
            self._pending[flow_execution_id].append(TaskStatusUpdate(task_name, status))

    def flush(self) -> int:
        """Post everything buffered now; returns the statuses the server accepted."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(list)
        sent = 0
        for flow_execution_id, statuses in pending.items():
            for start in range(0, len(statuses), MAX_BATCH):
                batch = statuses[start : start + MAX_BATCH]
                try:
                    self.client.add_task_statuses(flow_execution_id, batch)
                except ApiError as exc:
                    logger.warning(
                        "flow execution %s: could not post %d status(es) to its history: %s",
                        flow_execution_id,
                        len(batch),
                        exc,
                    )
                    continue
                sent += len(batch)
        return sent

    def close(self, *, timeout: float | None = None) -> None:
        """Stop the background thread and post what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
