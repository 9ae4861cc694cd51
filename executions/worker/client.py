"""The worker's HTTP client: one method per API route it uses, and the retry policy.

Every route the worker calls is in ``ApiClient`` and nowhere else, so the protocol can be
read (and matched against the server) in one place.  Retries follow Prefect's client: only
transport errors and 408/429/502/503 are retried, with exponential backoff, jitter and
``Retry-After``; any other answer is final.  That is safe because every call the worker
makes can be repeated: reports are idempotent on the server's unique key, heartbeats and
releases are conditional on the worker still holding the lease, and a claim whose answer is
lost only costs a lease expiry.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from executions.worker.payloads import (
    ClaimedTask,
    HeartbeatAnswer,
    PayloadError,
    TaskExecutionReport,
    TaskOutputReport,
    TaskStatusUpdate,
)

logger = logging.getLogger("flowplatform.worker.client")

USER_AGENT = "flowplatform-worker/1"
# Extra read time granted to a long-poll beyond the server's own wait: the server answers
# at ``wait_seconds`` at the latest, so the socket must not give up before that.
CLAIM_TIMEOUT_SLACK_SECONDS = 10.0


class ApiError(Exception):
    """An API call failed: an error answer, or no answer at all after the retries."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            code = f" {self.code}" if self.code else ""
            parts.append(f"(HTTP {self.status_code}{code})")
        if self.request_id:
            parts.append(f"[request_id={self.request_id}]")
        return " ".join(parts)


class LeaseLost(ApiError):
    """409: the task is no longer this worker's (lease expired, cancelled, or finished
    with another result).  The worker must abandon it and never retry the call."""


class NotFound(ApiError):
    """404: the resource is gone (or belongs to another organization)."""


class AuthenticationError(ApiError):
    """401/403: the key is wrong, revoked, read-only or not a service key.  Retrying
    cannot help; the worker stops."""


class ApiUnavailable(ApiError):
    """No usable answer after every retry: transport errors or 408/429/502/503."""


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a request."""

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    # Each delay is stretched by up to this fraction, so workers that failed together do
    # not come back together.
    jitter: float = 0.5
    max_retry_after_seconds: float = 120.0
    retry_statuses: frozenset[int] = frozenset({408, 429, 502, 503})

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay after the ``attempt``-th failure (1-based)."""
        delay = min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** (attempt - 1))
        return delay * (1 + rng.uniform(0, self.jitter))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_from_response(response: httpx.Response) -> ApiError:
    """Build the typed error from the API's envelope ``{"error": {...}, "request_id"}``."""
    request_id = response.headers.get("X-Request-ID")
    message, code, details = response.reason_phrase or "HTTP error", None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        envelope = body.get("error")
        if isinstance(envelope, dict):
            message = str(envelope.get("message") or message)
            code = envelope.get("code") if isinstance(envelope.get("code"), str) else None
            details = envelope.get("details")
        elif "detail" in body:  # a bare DRF answer, should one slip through
            message = str(body["detail"])
        if isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
    status = response.status_code
    kind: type[ApiError] = ApiError
    if status == 409:
        kind = LeaseLost
    elif status == 404:
        kind = NotFound
    elif status in (401, 403):
        kind = AuthenticationError
    return kind(message, status_code=status, code=code, details=details, request_id=request_id)


class ApiClient:
    """The flowplatform API as the worker sees it.  Thread-safe: one instance is shared
    by the claim loop, the heartbeat thread and every task thread (keep-alive pool)."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=30.0),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send one API call, retrying what may be retried; return the decoded JSON body."""
        policy = retry or self.retry
        attempt = 0
        while True:
            attempt += 1
            delay: float | None
            try:
                response = self._http.request(
                    method, path, json=json, timeout=timeout or self._http.timeout
                )
            except httpx.TransportError as exc:
                if attempt >= policy.max_attempts:
                    raise ApiUnavailable(
                        f"{method} {path} failed after {attempt} attempts: {exc!r}"
                    ) from exc
                delay = policy.backoff(attempt, self._rng)
                logger.warning("%s %s: %r; retry %d in %.2fs", method, path, exc, attempt, delay)
            else:
                if response.is_success:
                    return response.json() if response.content else None
                error = _error_from_response(response)
                if response.status_code not in policy.retry_statuses:
                    raise error
                if attempt >= policy.max_attempts:
                    raise ApiUnavailable(
                        f"{method} {path} failed after {attempt} attempts: {error}",
                        status_code=error.status_code,
                        code=error.code,
                        request_id=error.request_id,
                    )
                delay = parse_retry_after(response.headers.get("Retry-After"))
                if delay is None:
                    delay = policy.backoff(attempt, self._rng)
                delay = min(delay, policy.max_retry_after_seconds)
                logger.warning("%s %s: %s; retry %d in %.2fs", method, path, error, attempt, delay)
            self._sleep(delay)

    # -- routes ---------------------------------------------------------------------

    def claim(
        self, *, worker_id: str, executors: Sequence[str], limit: int, wait_seconds: float
    ) -> list[ClaimedTask]:
        """``POST /api/task-executions/claim``: long-poll for up to ``limit`` tasks."""
        timeout = httpx.Timeout(
            self.timeout_seconds,
            connect=min(self.timeout_seconds, 5.0),
            read=wait_seconds + self.timeout_seconds + CLAIM_TIMEOUT_SLACK_SECONDS,
        )
        wait: float | int = int(wait_seconds) if float(wait_seconds).is_integer() else wait_seconds
        body = {
            "worker_id": worker_id,
            "executors": list(executors),
            "limit": limit,
            "wait_seconds": wait,
        }
        answer = self.request("POST", "/api/task-executions/claim", json=body, timeout=timeout)
        items = answer.get("task_executions") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ApiError(f"claim answer has no task_executions list: {answer!r}")
        return self._claimed_tasks(items, worker_id)

    def _claimed_tasks(self, items: list[Any], worker_id: str) -> list[ClaimedTask]:
        tasks: list[ClaimedTask] = []
        for item in items:
            try:
                tasks.append(ClaimedTask.from_json(item))
            except PayloadError as exc:
                self._give_back_malformed(item, worker_id, exc)
        return tasks

    def _give_back_malformed(self, item: Any, worker_id: str, exc: PayloadError) -> None:
        # A task the worker cannot read must not sit claimed until its lease expires.
        logger.error("ignoring malformed claimed task: %s", exc)
        task_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(task_id, str):
            try:
                self.release(task_id, worker_id=worker_id)
            except ApiError as release_error:
                logger.error("could not release malformed task %s: %s", task_id, release_error)

    def heartbeat(
        self, task_id: str, *, worker_id: str, retry: RetryPolicy | None = None
    ) -> HeartbeatAnswer:
        """``POST /api/task-executions/{id}/heartbeat``: extend the lease; raises
        ``LeaseLost`` when the task is no longer this worker's."""
        answer = self.request(
            "POST",
            f"/api/task-executions/{task_id}/heartbeat",
            json={"worker_id": worker_id},
            retry=retry,
        )
        return HeartbeatAnswer.from_json(answer)

    def release(self, task_id: str, *, worker_id: str) -> None:
        """``POST /api/task-executions/{id}/release``: hand a claimed task back to the
        queue without using up an attempt (graceful shutdown)."""
        self.request(
            "POST", f"/api/task-executions/{task_id}/release", json={"worker_id": worker_id}
        )

    def report_task_execution(self, report: TaskExecutionReport) -> list[ClaimedTask]:
        """``POST /api/task-executions``: the terminal state; ``LeaseLost`` on 409. Returns
        the tasks the report claimed for this worker (``report.claim_executors``)."""
        answer = self.request("POST", "/api/task-executions", json=report.to_json())
        items = answer.get("claimed") if isinstance(answer, dict) else None
        if not report.claim_executors or not isinstance(items, list):
            return []
        return self._claimed_tasks(items, report.worker_id)

    def create_task_output(self, output: TaskOutputReport) -> Any:
        """``POST /api/task-outputs``: the task's summary/output for display."""
        return self.request("POST", "/api/task-outputs", json=output.to_json())

    def add_task_statuses(
        self, flow_execution_id: str, statuses: Sequence[TaskStatusUpdate]
    ) -> Any:
        """``POST /api/flow-executions/{id}/task-status``: append to the status history."""
        return self.request(
            "POST",
            f"/api/flow-executions/{flow_execution_id}/task-status",
            json={"statuses": [status.to_json() for status in statuses]},
        )

    def list_task_executors(self) -> Any:
        """``GET /api/task-executors``: the server's executor catalogue (diagnostics)."""
        return self.request("GET", "/api/task-executors")

    def with_retry(self, **changes: Any) -> RetryPolicy:
        """A variant of this client's retry policy, e.g. fewer attempts for heartbeats."""
        return replace(self.retry, **changes)
