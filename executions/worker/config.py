"""Worker configuration: one frozen value shared by the CLI, ``manage.py flowworker`` and
embedded workers, checked once at construction so a bad flag fails before any claim."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field

# The server's bounds for a claim (DESIGN §8): at most 50 tasks, long-poll at most 30 s.
MAX_CLAIM_LIMIT = 50
MAX_WAIT_SECONDS = 30.0


def default_worker_id() -> str:
    """``host-pid-random``: readable in logs and unique even for restarts on one host."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class WorkerConfig:
    url: str
    key: str
    worker_id: str = field(default_factory=default_worker_id)
    # ``None``: every claimable executor the worker's registry knows.
    executors: tuple[str, ...] | None = None
    concurrency: int = 4
    wait_seconds: float = 20.0
    python_callables: tuple[str, ...] = ()
    shutdown_grace_seconds: float = 30.0
    log_level: str = "INFO"
    request_timeout_seconds: float = 10.0
    # How long a second signal waits for the releases before giving up on them.
    immediate_exit_seconds: float = 5.0
    # How often finished tasks' statuses are posted to their flow executions' history.
    status_flush_seconds: float = 0.5

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if not self.key:
            problems.append("key is required")
        if not self.worker_id or len(self.worker_id) > 200:
            problems.append("worker_id must be 1..200 characters")
        if self.concurrency < 1:
            problems.append("concurrency must be at least 1")
        if not 0 <= self.wait_seconds <= MAX_WAIT_SECONDS:
            problems.append(f"wait_seconds must be within 0..{MAX_WAIT_SECONDS:g}")
        if self.shutdown_grace_seconds < 0:
            problems.append("shutdown_grace_seconds must not be negative")
        if self.status_flush_seconds <= 0:
            problems.append("status_flush_seconds must be positive")
        if self.request_timeout_seconds <= 0:
            problems.append("request_timeout_seconds must be positive")
        if self.executors is not None and not self.executors:
            problems.append("executors must not be empty")
        for target in self.python_callables:
            module, _, function = target.partition(":")
            if not module or not function:
                problems.append(f"python callable {target!r} is not 'module:function'")
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):
            problems.append(f"unknown log level {self.log_level!r}")
        if problems:
            raise ValueError("; ".join(problems))
