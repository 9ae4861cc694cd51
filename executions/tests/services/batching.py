"""Deciding a batch of reports in a test, as ``GroupCommit`` does: the batch, then its
follow-up."""

from __future__ import annotations

from collections.abc import Sequence

from executions.engine import reports
from executions.engine.group_commit import Batch, Entry


def decide(entries: Sequence[Entry]) -> None:
    follow_up = reports.decide_reports(Batch(list(entries), lambda taken, accept=None: []))
    if follow_up is not None:
        follow_up()
