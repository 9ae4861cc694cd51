"""Deciding a batch of reports in a test, as ``GroupCommit`` does: the batch, then its
follow-up."""

from __future__ import annotations

from collections.abc import Sequence

from executions.services import task_executions
from executions.services.group_commit import Batch, Entry


def decide(entries: Sequence[Entry]) -> None:
    follow_up = task_executions._decide(Batch(list(entries), lambda taken, accept=None: []))
    if follow_up is not None:
        follow_up()
