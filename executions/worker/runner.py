"""The worker: claim loop, heartbeats, and graceful shutdown.

Three kinds of threads cooperate:

* the thread calling ``Worker.run`` (normally the main thread) long-polls
  ``POST /api/task-executions/claim`` for as many tasks as it has free slots; a finishing
  task's report claims the task that takes its slot (``claim`` in the report), so while work
  keeps coming the worker sends one request per task;
* one heartbeat thread extends the lease of every running task every ``lease_seconds / 3``
  and passes on what the answer says (cancellation asked, lease lost);
* one thread posts the status history of finished tasks in batches (``history.py``);
* one supervising thread per running task (at most ``concurrency``) runs it and reports
  it (see ``tasks.py``).

Shutdown (SIGTERM/SIGINT or ``request_shutdown()``) stops claiming at once, gives running
tasks ``shutdown_grace_seconds`` to finish, then releases the rest to the queue so another
worker takes them without using up an attempt.  A claim already in flight is allowed to
return so whatever it claimed can be released instead of waiting for a lease to expire.
A second signal releases everything immediately and exits.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections import Counter

from executions.worker.client import (
    ApiClient,
    ApiError,
    AuthenticationError,
    LeaseLost,
    NotFound,
    RetryPolicy,
)
from executions.worker.config import MAX_CLAIM_LIMIT, WorkerConfig
from executions.worker.executors import ExecutorRegistry, UnknownExecutor, default_registry
from executions.worker.history import StatusHistory
from executions.worker.payloads import ClaimedTask
from executions.worker.signals import ImmediateExit, SignalBridge
from executions.worker.tasks import MAX_WAIT_SLICE_SECONDS, ActiveTask, TaskSupervisor

logger = logging.getLogger("flowplatform.worker")

# An empty claim answered faster than this (``wait_seconds=0``, or a server that does not
# long-poll) is followed by a pause, so an idle worker never spins against the API.
MIN_EMPTY_CLAIM_INTERVAL_SECONDS = 0.25
MAX_CLAIM_BACKOFF_SECONDS = 30.0


def _tally(running: int, counts: dict[str, int]) -> str:
    done = " ".join(f"{name}={count}" for name, count in sorted(counts.items()))
    return f"running={running}" + (f" {done}" if done else "")


class Worker:
    """An HTTP-only worker.  ``run()`` blocks until shutdown and returns an exit code."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        client: ApiClient | None = None,
        registry: ExecutorRegistry | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or default_registry
        self.executors = self._resolve_executors()
        self._owns_client = client is None
        self.client = client or ApiClient(
            config.url, config.key, timeout_seconds=config.request_timeout_seconds
        )
        self._lock = threading.Lock()
        self._active: dict[str, ActiveTask] = {}
        self._counts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._release_at: float | None = None
        self._slot_freed = threading.Event()
        self._heartbeat_wake = threading.Event()
        self._heartbeat_stop = threading.Event()
        self._exit_code = 0
        self._rng = random.Random()
        self._interruptible = False
        self._signals = SignalBridge(self._on_signal, lambda: self._interruptible)
        self._history = StatusHistory(self.client, flush_seconds=config.status_flush_seconds)
        self._supervisor = TaskSupervisor(
            client=self.client,
            registry=self.registry,
            worker_id=config.worker_id,
            python_callables=frozenset(config.python_callables),
            release_at=lambda: self._release_at,
            history=self._history,
            next_work=self._next_work,
            accept=self._accept,
        )
        logging.getLogger("flowplatform.worker").setLevel(config.log_level.upper())

    def _resolve_executors(self) -> tuple[str, ...]:
        """Claim only what this worker can run: an unknown name would claim tasks only to
        fail them, and ``human_review`` is never claimed by anyone."""
        names = self.config.executors or tuple(self.registry.names(claimable_only=True))
        problems = []
        for name in names:
            try:
                entry = self.registry.get(name)
            except UnknownExecutor:
                problems.append(f"{name!r} is not registered (load its module with --plugin)")
                continue
            if not entry.claimable:
                problems.append(f"{name!r} is never claimed by workers")
        if problems:
            raise ValueError("cannot serve executors: " + "; ".join(problems))
        return tuple(dict.fromkeys(names))

    # -- public API -----------------------------------------------------------------

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def counts(self) -> dict[str, int]:
        """Finished tasks by outcome (``completed``, ``failed``, ``released``, ...)."""
        with self._lock:
            return dict(self._counts)

    def request_shutdown(self, *, immediate: bool = False) -> None:
        """Stop claiming; release running tasks after the grace (at once if
        ``immediate``).  Safe from any thread (it takes locks, so not from a signal
        handler: see ``signals.py``); idempotent."""
        grace = 0.0 if immediate else self.config.shutdown_grace_seconds
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            release_at = time.monotonic() + grace
            if self._release_at is None or release_at < self._release_at:
                self._release_at = release_at
            active = list(self._active.values())
        if first or immediate:
            logger.info(
                "shutdown requested: no new claims; %d running task(s) %s",
                len(active),
                "released now" if immediate else f"get {grace:g}s to finish",
            )
        for task in active:
            task.wakeup.set()
        self._slot_freed.set()

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Work until shutdown; 0 after a clean shutdown, 1 if the API refused the key."""
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._signals.install()
        heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="flowworker-heartbeat", daemon=True
        )
        heartbeat.start()
        self._history.start()
        logger.info(
            "worker %s started: url=%s executors=%s concurrency=%d",
            self.config.worker_id,
            self.config.url,
            ",".join(self.executors),
            self.config.concurrency,
        )
        self._interruptible = True
        try:
            try:
                self._claim_loop()
                self._drain(timeout=None)
            except ImmediateExit:
                self._interruptible = False
                self.request_shutdown(immediate=True)
                self._drain(timeout=self.config.immediate_exit_seconds)
        finally:
            self._interruptible = False
            self._heartbeat_stop.set()
            self._heartbeat_wake.set()
            heartbeat.join(timeout=MAX_WAIT_SLICE_SECONDS)
            self._history.close(timeout=MAX_WAIT_SLICE_SECONDS)
            self._signals.uninstall()
            if self._owns_client:
                self.client.close()
        with self._lock:
            tally = _tally(len(self._active), dict(self._counts))
        logger.info("worker %s stopped: %s", self.config.worker_id, tally)
        return self._exit_code

    # -- claiming -------------------------------------------------------------------

    def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._slot_freed.clear()
            free = self.config.concurrency - self.running_count
            if free <= 0:
                self._slot_freed.wait(MAX_WAIT_SLICE_SECONDS)
                continue
            started = time.monotonic()
            try:
                tasks = self.client.claim(
                    worker_id=self.config.worker_id,
                    executors=self.executors,
                    limit=min(free, MAX_CLAIM_LIMIT),
                    wait_seconds=self.config.wait_seconds,
                )
            except AuthenticationError as exc:
                logger.error("the API refused this worker's key, stopping: %s", exc)
                self._exit_code = 1
                self.request_shutdown()
                return
            except ApiError as exc:
                failures += 1
                delay = RetryPolicy(max_delay_seconds=MAX_CLAIM_BACKOFF_SECONDS).backoff(
                    failures, self._rng
                )
                logger.warning("claim failed (%s); next claim in %.1fs", exc, delay)
                self._stopping.wait(delay)
                continue
            failures = 0
            for task in tasks:
                self._accept(task)
            elapsed = time.monotonic() - started
            if not tasks and elapsed < MIN_EMPTY_CLAIM_INTERVAL_SECONDS:
                self._stopping.wait(MIN_EMPTY_CLAIM_INTERVAL_SECONDS - elapsed)

    def _next_work(self) -> tuple[str, ...]:
        """What a finishing task's report claims for its slot: one task of any executor this
        worker serves; nothing once shutting down."""
        return () if self._stopping.is_set() else self.executors

    def _accept(self, task: ClaimedTask) -> None:
        if self._stopping.is_set():
            logger.info("%s: claimed during shutdown, releasing", task.describe())
            self._supervisor.release(task)
            return
        active = ActiveTask(task, now=time.monotonic())
        with self._lock:
            if task.id in self._active:
                logger.warning("%s: claimed twice, ignoring the duplicate", task.describe())
                return
            self._active[task.id] = active
        self._heartbeat_wake.set()
        threading.Thread(
            target=self._supervise,
            args=(active,),
            name=f"flowworker-task-{task.task_name}",
            daemon=True,
        ).start()

    def _supervise(self, active: ActiveTask) -> None:
        """Thread body for one task; always frees its slot, whatever happens."""
        task = active.task
        outcome = "error"
        try:
            outcome = self._supervisor.run(active)
        except Exception:
            logger.exception("%s: worker error; its lease will expire", task.describe())
        finally:
            with self._lock:
                self._counts[outcome] += 1
                running, counts = len(self._active) - 1, dict(self._counts)
            # Logged before the slot is freed, so a stopped worker has logged every task.
            logger.info(
                "task finished: %s status=%s duration_ms=%d (%s)",
                task.describe(),
                outcome,
                round((time.monotonic() - active.claimed_at) * 1000),
                _tally(running, counts),
            )
            with self._lock:
                self._active.pop(task.id, None)
            self._slot_freed.set()

    def _drain(self, *, timeout: float | None) -> None:
        """Wait for the running tasks: they finish, or release themselves at the grace."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._slot_freed.clear()
            running = self.running_count
            if running == 0:
                return
            if deadline is not None and time.monotonic() >= deadline:
                logger.warning("exiting with %d task(s) still being released", running)
                return
            self._slot_freed.wait(MAX_WAIT_SLICE_SECONDS / 10)

    # -- heartbeats -----------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        # Few retries: a slow heartbeat must not delay the other tasks' heartbeats.
        retry = self.client.with_retry(max_attempts=2)
        while not self._heartbeat_stop.is_set():
            self._heartbeat_wake.clear()
            next_due = time.monotonic() + MAX_WAIT_SLICE_SECONDS
            with self._lock:
                active = list(self._active.values())
            for task in active:
                if task.lease_lost:
                    continue
                if task.next_heartbeat <= time.monotonic():
                    self._heartbeat(task, retry)
                    task.next_heartbeat = time.monotonic() + task.heartbeat_interval
                next_due = min(next_due, task.next_heartbeat)
            self._heartbeat_wake.wait(max(0.0, next_due - time.monotonic()))

    def _heartbeat(self, active: ActiveTask, retry: RetryPolicy) -> None:
        task = active.task
        try:
            answer = self.client.heartbeat(task.id, worker_id=self.config.worker_id, retry=retry)
        except (LeaseLost, NotFound) as exc:
            logger.warning("%s: lease lost: %s", task.describe(), exc)
            active.mark_lease_lost()
        except ApiError as exc:
            logger.warning("%s: heartbeat failed: %s", task.describe(), exc)
        except Exception:
            logger.exception("%s: heartbeat failed", task.describe())
        else:
            if answer.cancel_requested and not active.cancel_requested:
                logger.info("%s: cancellation requested", task.describe())
                active.mark_cancel_requested()

    # -- signals --------------------------------------------------------------------

    def _on_signal(self, signum: signal.Signals, count: int) -> None:
        """Runs on the signal watcher thread (see ``signals.py``), never in a handler."""
        if count == 1:
            logger.info("received %s: finishing running tasks (again: exit now)", signum.name)
            self.request_shutdown()
        else:
            logger.warning("received %s again: releasing running tasks and exiting", signum.name)
            self.request_shutdown(immediate=True)
