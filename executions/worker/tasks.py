"""Running one claimed task from start to report.

Each task gets a supervising thread (``TaskSupervisor.run``) and a separate daemon thread
for the executor's body.  The split exists because Python cannot interrupt a thread: the
supervisor must be able to stop *waiting* for a body that is cancelled, times out, loses its
lease or outlives the shutdown grace, and then report, release or abandon the task on time.
A body left behind is told to stop through its context and, being a daemon, never keeps
the process alive.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from executions.worker.client import ApiClient, ApiError, LeaseLost
from executions.worker.executors import ExecutionContext, ExecutorRegistry, ExecutorResult
from executions.worker.history import StatusHistory
from executions.worker.payloads import (
    ClaimedTask,
    TaskError,
    TaskExecutionReport,
    TaskOutputReport,
    TerminalStatus,
)

logger = logging.getLogger("flowplatform.worker")

# Very short leases (tests, misconfiguration) must not turn heartbeats into a busy loop.
MIN_HEARTBEAT_INTERVAL_SECONDS = 0.05
# Upper bound on any single wait, so a missed wake-up costs at most this much.
MAX_WAIT_SLICE_SECONDS = 1.0


class ActiveTask:
    """A claimed task while this worker holds it.

    Written by three threads: the supervisor, the executor body and the heartbeat loop.
    Each flag has a single writer and every write is followed by ``wakeup.set()``, so
    the supervisor re-reads the flags whenever something changes.
    """

    def __init__(self, task: ClaimedTask, *, now: float) -> None:
        self.task = task
        self.claimed_at = now
        self.heartbeat_interval = max(task.lease_seconds / 3, MIN_HEARTBEAT_INTERVAL_SECONDS)
        self.next_heartbeat = now + self.heartbeat_interval
        self.wakeup = threading.Event()
        self.stop_event = threading.Event()  # handed to the executor
        self.cancel_requested = False
        self.lease_lost = False
        self.body_done = False
        self.result: ExecutorResult | None = None
        self.error: TaskError | None = None
        self.body_thread: threading.Thread | None = None
        self.body_started_at: float | None = None

    def mark_cancel_requested(self) -> None:
        self.cancel_requested = True
        self.wakeup.set()

    def mark_lease_lost(self) -> None:
        self.lease_lost = True
        self.wakeup.set()


@dataclass(frozen=True)
class Verdict:
    """What the supervisor decided to do with a task once it stopped waiting."""

    action: Literal["report", "release", "abandon"]
    status: TerminalStatus | None = None
    output: Any = None
    error: TaskError | None = None
    summary: Any = field(default_factory=dict)
    reason: str = ""


def error_from_exception(exc: BaseException) -> TaskError:
    """``{message, type, traceback}`` of an executor failure; ``type`` is the class name
    so flows and dashboards can tell ``InvalidParameters`` from ``HTTPStatusError``."""
    return TaskError(
        message=str(exc) or type(exc).__name__,
        type=type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
    )


def _stack_of(thread: threading.Thread | None) -> str:
    """Where a timed-out body is stuck right now: the most useful traceback it has."""
    frame = sys._current_frames().get(thread.ident) if thread and thread.ident else None
    if frame is None:
        return ""
    return "Stack of the task at its timeout:\n" + "".join(traceback.format_stack(frame))


def _failure_summary(error: TaskError) -> dict[str, Any]:
    return {"error": {"type": error.type, "message": error.message[:500]}}


class TaskSupervisor:
    """Runs claimed tasks and reports them; one instance serves all task threads."""

    def __init__(
        self,
        *,
        client: ApiClient,
        registry: ExecutorRegistry,
        worker_id: str,
        python_callables: frozenset[str],
        release_at: Callable[[], float | None],
        history: StatusHistory | None = None,
        next_work: Callable[[], tuple[str, ...]] = tuple,
        accept: Callable[[ClaimedTask], None] | None = None,
    ) -> None:
        self.client = client
        self.history = history
        # The executors to claim the next task for with a report (none: no claim), and who
        # takes what the report claimed.
        self.next_work = next_work
        self.accept = accept
        self.registry = registry
        self.worker_id = worker_id
        self.python_callables = python_callables
        # When the worker's shutdown grace ends (``None`` while not shutting down).
        self.release_at = release_at

    def run(self, active: ActiveTask) -> str:
        """Run ``active`` to its end; return the word for the progress line (a terminal
        status, or ``released``/``abandoned``/``dropped``/``unreported``)."""
        task = active.task
        logger.info(
            "task started: %s executor=%s attempt=%s%s id=%s",
            task.describe(),
            task.task_executor_name,
            task.attempt,
            f"/{task.max_attempts}" if task.max_attempts else "",
            task.id,
        )
        # No "running" status post: the claim already made the task execution and its
        # output running, so the terminal report is the first request after the claim.
        self._start_body(active)
        verdict = self._await_verdict(active)
        active.stop_event.set()
        if verdict.action == "abandon":
            logger.warning("%s: abandoned (%s)", task.describe(), verdict.reason)
            return "abandoned"
        if verdict.action == "release":
            self.release(task)
            return "released"
        return self._report(task, verdict)

    # -- running --------------------------------------------------------------------

    def _start_body(self, active: ActiveTask) -> None:
        context = ExecutionContext(
            stop_event=active.stop_event,
            python_callables=self.python_callables,
            task=active.task,
        )
        thread = threading.Thread(
            target=self._body,
            args=(active, context),
            name=f"flowworker-exec-{active.task.task_name}",
            daemon=True,
        )
        active.body_thread = thread
        active.body_started_at = time.monotonic()
        thread.start()

    def _body(self, active: ActiveTask, context: ExecutionContext) -> None:
        task = active.task
        try:
            active.result = self.registry.run(task.task_executor_name, task.input, context)
        except BaseException as exc:  # noqa: BLE001 - SystemExit from user code is a failure too
            active.error = error_from_exception(exc)
        finally:
            active.body_done = True
            active.wakeup.set()

    def _await_verdict(self, active: ActiveTask) -> Verdict:
        """Wait for whichever comes first: the body, a lost lease, a cancellation, the
        task's timeout or the end of the shutdown grace."""
        task = active.task
        started = active.body_started_at or time.monotonic()
        deadline = started + task.timeout_seconds if task.timeout_seconds else None
        while True:
            active.wakeup.clear()
            if active.lease_lost:
                return Verdict("abandon", reason="lease lost; result not reported")
            if active.body_done:
                return self._body_verdict(active)
            if active.cancel_requested:
                return Verdict("report", "cancelled", summary={"reason": "cancel requested"})
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                error = TaskError(
                    message=f"the task ran longer than its timeout of {task.timeout_seconds:g}s",
                    type="Timeout",
                    traceback=_stack_of(active.body_thread),
                )
                return Verdict("report", "failed", error=error, summary=_failure_summary(error))
            release_at = self.release_at()
            if release_at is not None and now >= release_at:
                return Verdict("release")
            limits = [t - now for t in (deadline, release_at) if t is not None]
            active.wakeup.wait(min([MAX_WAIT_SLICE_SECONDS, *limits]))

    @staticmethod
    def _body_verdict(active: ActiveTask) -> Verdict:
        if active.error is not None:
            error = active.error
            return Verdict("report", "failed", error=error, summary=_failure_summary(error))
        result = active.result or ExecutorResult()
        summary = result.summary if result.summary is not None else {}
        return Verdict("report", "completed", output=result.output, summary=summary)

    # -- reporting ------------------------------------------------------------------

    def _report(self, task: ClaimedTask, verdict: Verdict) -> str:
        """One request per task when there is nothing more to say: the terminal report
        carries the status and the output, and the server keeps the task's output in step
        with it. The task output is posted after it only when the executor produced a
        summary (an empty one adds nothing to what the report stored); no task-status
        history post repeats the status the report gave. A 409 on the report means the
        result is unwanted: nothing more is sent. The status joins the flow execution's
        history in the next batch (``history.py``). The report also claims the task that
        takes this one's slot (``next_work``): a busy worker sends no claim requests."""
        assert verdict.status is not None
        report = TaskExecutionReport(
            flow_execution_id=task.flow_execution_id,
            task_name=task.task_name,
            task_execution_idx=task.task_execution_idx,
            status=verdict.status,
            worker_id=self.worker_id,
            output=verdict.output,
            error=verdict.error,
            claim_executors=self.next_work() if self.accept is not None else (),
        )
        try:
            claimed = self.client.report_task_execution(report)
        except LeaseLost as exc:
            logger.warning(
                "%s: %s result no longer wanted, dropped: %s", task.describe(), verdict.status, exc
            )
            return "dropped"
        except ApiError as exc:
            logger.error("%s: could not report %s: %s", task.describe(), verdict.status, exc)
            return "unreported"
        if verdict.summary:
            output = TaskOutputReport(
                flow_execution_id=task.flow_execution_id,
                task_name=task.task_name,
                status=verdict.status,
                summary=verdict.summary,
                output=verdict.output,
            )
            try:
                self.client.create_task_output(output)
            except ApiError as exc:
                logger.warning("%s: could not post the task output: %s", task.describe(), exc)
        if self.history is not None:
            self.history.add(task.flow_execution_id, task.task_name, verdict.status)
        for next_task in claimed:  # this slot's next task, claimed with the report
            assert self.accept is not None
            self.accept(next_task)
        return verdict.status

    def release(self, task: ClaimedTask) -> None:
        """Give a claimed task back to the queue without using up an attempt."""
        try:
            self.client.release(task.id, worker_id=self.worker_id)
        except LeaseLost:
            pass  # already not ours: nothing to give back
        except ApiError as exc:
            logger.error("%s: could not release: %s", task.describe(), exc)
        else:
            logger.info("%s: released back to the queue", task.describe())
