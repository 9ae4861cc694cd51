"""Worker reports (``POST /api/task-executions``, seed 002): an idempotent upsert on
``(flow_execution_id, task_name, task_execution_idx)`` that drives the engine.

Rules (DESIGN §8): reports may skip states (queued → completed); repeating a terminal report
answers the stored record and changes nothing; a report that would change a terminal
execution is a 409 and changes nothing; while an execution is leased, only its lease
holder's report changes it (409 for anyone else, user keys included: a person uses PUT).

``decide_reports`` is the one procedure that decides reports, for a batch of one and for a
batch of many alike: the reports of one organization in one transaction (their flow
executions locked in one statement), then, once that has committed, the claims of those
that asked for their worker's next work. ``GroupCommit`` is only the scheduler in front of
it: it decides when, and on which thread, a batch runs (``report_task_execution``).
"""

from __future__ import annotations

import copy
import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction

from executions import dsl
from executions.engine import rows, transitions, wakeup
from executions.engine.definitions import check_task_names
from executions.engine.events import collecting
from executions.engine.group_commit import Batch, Entry, GroupCommit
from executions.engine.leases import claim_task_executions
from executions.engine.scheduling import on_task_finished, prefetch_runs, sync_outputs
from executions.engine.state import Run, lock_flow_executions
from executions.enums import TASK_REPORTABLE, TASK_TERMINAL, TaskExecutionStatus
from executions.models import TaskExecution
from flowplatform import tenancy
from flowplatform.exceptions import BadRequest, Conflict, Forbidden, NotFound
from flowplatform.principal import Principal

TE = TaskExecutionStatus
logger = logging.getLogger(__name__)
REPORTED_FIELDS = ("input", "output", "error")

Report = tuple[Principal, Mapping[str, Any]]


@dataclass(frozen=True)
class ReportOutcome:
    """What a report did: the task execution as stored, whether it was created, and (when
    the report asked to ``claim``) the task executions claimed for its worker, rendered as
    the claim endpoint renders them."""

    task: TaskExecution
    created: bool
    claimed: list[dict[str, Any]] | None = None


def report_task_execution(*, principal: Principal, data: Mapping[str, Any]) -> ReportOutcome:
    """Decide one report (``data``: the validated body). Outside a transaction it joins the
    other reports of its organization this process is deciding at the same moment and
    returns once they have committed; inside the caller's transaction it is decided there,
    alone (no other caller's report may share a transaction it does not own)."""
    check_report(principal, data)
    if connection.in_atomic_block:
        outcome: ReportOutcome = _reports.decide_here((principal, data))
    else:
        outcome = _reports.submit(principal.organization.pk, (principal, data))
    return outcome


async def areport_task_execution(
    *,
    principal: Principal,
    data: Mapping[str, Any],
    start: Callable[[Callable[[], None]], None],
) -> ReportOutcome:
    """``report_task_execution`` for a caller in an event loop: it waits there for its
    batch, and the batches it is to lead run through ``start`` (on a thread)."""
    check_report(principal, data)
    outcome: ReportOutcome = await _reports.submit_async(
        principal.organization.pk, (principal, data), start=start
    )
    return outcome


def check_report(principal: Principal, data: Mapping[str, Any]) -> None:
    """What a report is refused for before it is decided."""
    principal.check_body_organization(data)
    status = data["status"]
    if status not in TASK_REPORTABLE:
        allowed = ", ".join(sorted(TASK_REPORTABLE))
        raise BadRequest(
            f"Invalid status {status!r}; a report's status is one of {allowed}.",
            details=[{"loc": ["body", "status"], "msg": "Invalid status.", "type": "enum"}],
        )
    if data.get("claim"):
        if not principal.is_service:
            raise Forbidden("Only service keys claim task executions.")
        if not data.get("worker_id"):
            raise BadRequest(
                "A report that claims needs the worker_id the claimed work is leased to.",
                details=[{"loc": ["body", "worker_id"], "msg": "Required.", "type": "missing"}],
            )


# -- the decision -------------------------------------------------------------------------


def decide_reports(entries: Batch[Report]) -> Callable[[], None] | None:
    """Decide the reports of one organization in one transaction (one lock statement for
    their flow executions, one batch of events, one commit); returns the follow-up that
    hands out the claims of those that asked, to run once that has committed.

    A report of a flow execution that is missing (or deleted, or another organization's) is
    refused up front. A report refused on the way (a 409, an unknown task, any error) must
    change nothing, and it may have changed the others' state in memory: the transaction is
    rolled back and the batch decided again without it. Refusals are rare (a late report of
    a retried task), so this costs less than a savepoint around every report.

    New executions are inserted with the batch's other writes, without a savepoint of their
    own (``_apply``). Should one collide with a row after all, the error can surface at any
    later statement of the batch: the batch is rolled back and decided again with every
    insert guarded, which words each report's outcome exactly.
    """
    principal = entries[0].work[0]
    remaining = list(entries)
    guarded = False
    while remaining:
        decided: list[tuple[Entry[Report], TaskExecution, bool]] = []
        refused: tuple[Entry[Report], Exception] | None = None
        try:
            # The batch's writes go as a few merged statements, sent in one round trip with
            # the statement that follows them: the events' INSERT (``rows.merging``).
            with tenancy.activate(principal.organization.pk, atomic=True), rows.merging():
                with collecting(), wakeup.holding() as wakeups:
                    runs = _locked_runs(principal, remaining)
                    # What queued up while the locks were awaited joins this batch, if its
                    # flow execution is one of those locked.
                    remaining += entries.take_more(functools.partial(_locked_in, runs))
                    remaining = _refuse_missing(remaining, runs)
                    _prefetch(runs, remaining)
                    for entry in remaining:
                        try:
                            task, created = _apply(
                                runs[_execution_of(entry)], *entry.work, guarded=guarded
                            )
                        except Exception as exc:  # noqa: BLE001 - its caller's error
                            refused = (entry, exc)
                            raise _Refused from exc
                        decided.append((entry, copy.copy(task), created))
                    for run in runs.values():
                        run.flush()
        except _Refused:
            assert refused is not None
            entry, error = refused
            if isinstance(error, IntegrityError) and not guarded:
                guarded = True  # perhaps another report's insert: decide again, guarded
                continue
            entry.error = error
            remaining.remove(entry)
            continue
        except IntegrityError:
            if guarded:
                raise
            guarded = True
            continue
        return functools.partial(_claims_after, principal, decided, wakeups)
    return None


_reports: GroupCommit[Report] = GroupCommit(decide_reports)


def _execution_of(entry: Entry[Report]) -> UUID:
    return UUID(str(entry.work[1]["flow_execution_id"]))


def _locked_in(runs: Mapping[UUID, Run], entry: Entry[Report]) -> bool:
    return _execution_of(entry) in runs


def _locked_runs(principal: Principal, entries: Sequence[Entry[Report]]) -> dict[UUID, Run]:
    """The flow executions the entries report on, locked in one statement."""
    ids = {_execution_of(entry) for entry in entries}
    locked = lock_flow_executions(flow_execution_ids=ids, organization=principal.organization)
    runs = {}
    for pk, execution in locked.items():
        run = Run.of(execution)
        run.defer_pending = True
        runs[pk] = run
    return runs


def _refuse_missing(entries: list[Entry[Report]], runs: Mapping[UUID, Run]) -> list[Entry[Report]]:
    """The entries whose flow execution is locked; the others are answered 404."""
    kept = []
    for entry in entries:
        if _execution_of(entry) in runs:
            kept.append(entry)
        else:
            missing = entry.work[1]["flow_execution_id"]
            entry.error = NotFound(f"Flow execution {missing} not found.")
    return kept


def _prefetch(runs: Mapping[UUID, Run], entries: Sequence[Entry[Report]]) -> None:
    """What reacting to the reports reads, for all their flow executions at once."""
    names: dict[UUID, list[str]] = {}
    for entry in entries:
        names.setdefault(_execution_of(entry), []).append(entry.work[1]["task_name"])
    prefetch_runs([(runs[pk], reported) for pk, reported in names.items()])


def _claims_after(
    principal: Principal,
    decided: Sequence[tuple[Entry[Report], TaskExecution, bool]],
    wakeups: Counter[tuple[str, str | None]],
) -> None:
    """The batch's follow-up, once its reports have committed, outside their flow
    execution's lock and while the next batch is decided: the claims of the reports that
    asked, in one transaction; then the claims waiting elsewhere are woken for what the
    reports queued and these did not take. The reports are stored whatever happens here: a
    claim that fails hands out nothing."""
    wanting = [entry for entry, _, _ in decided if entry.work[1].get("claim")]
    claimed: dict[Entry[Report], list[dict[str, Any]]] = {}
    if wanting:
        try:
            with tenancy.activate(principal.organization.pk, atomic=True), collecting():
                for entry in wanting:
                    request = entry.work[1]
                    claimed[entry] = claim_task_executions(
                        organization=principal.organization,
                        worker_id=request["worker_id"],
                        executors=request["claim"]["executors"],
                        limit=request["claim"]["limit"],
                        with_report=True,
                    )
        except Exception:  # noqa: BLE001 - the committed reports still succeed
            logger.exception("claims with reports failed; the workers claim again")
            claimed = {}
        for entry in wanting:
            taken = claimed.setdefault(entry, [])
            # Work handed out with a report wakes no waiting claim.
            wakeups.subtract(
                (str(principal.organization.pk), item["task_executor_name"]) for item in taken
            )
    wakeup.notify_on_commit((+wakeups).elements())
    for entry, task, created in decided:
        entry.result = ReportOutcome(task, created, claimed.get(entry))


class _Refused(Exception):
    """Rolls back a batch of reports in which one was refused."""


# -- one report -------------------------------------------------------------------------------


def _apply(
    run: Run, principal: Principal, data: Mapping[str, Any], *, guarded: bool
) -> tuple[TaskExecution, bool]:
    """Decide one report on ``run`` (its flow execution locked by this transaction).

    Executions are only ever created under their flow execution's lock, which this holds,
    so a report of an index above its task's latest is of a new key. Unless ``guarded`` it
    is inserted at once, without the row lock and savepoint that guard the insert otherwise
    (the caller decides again, guarded, if the insert fails)."""
    check_task_names(run.definition, [(("body", "task_name"), data["task_name"])])
    spec = run.definition.task(data["task_name"])
    actor = principal.actor_for(data)
    latest = _latest(run, data)
    idx = data["task_execution_idx"]
    if latest is not None and latest.task_execution_idx == idx:
        try:
            _update(run, latest, principal, data, actor=actor, read_unlocked=True)
            return latest, False
        except transitions.StatusChanged:
            pass  # claimed meanwhile: decide again on the locked row
    elif not guarded and (latest is None or latest.task_execution_idx < idx):
        task = _create(run, spec, data, actor=actor, guarded=False)
        assert task is not None
        _after_change(run, task, was_terminal=False)
        return task, True
    task = _locked_task(run, data)
    if task is None:
        task = _create(run, spec, data, actor=actor)
        if task is not None:
            _after_change(run, task, was_terminal=False)
            return task, True
        task = _locked_task(run, data)
        assert task is not None
    if run.latest.get(task.task_name, task).id == task.id:
        run.record(task)
    _update(run, task, principal, data, actor=actor)
    return task, False


def _latest(run: Run, data: Mapping[str, Any]) -> TaskExecution | None:
    """The reported task's latest execution, read with what reacting to the report needs in
    one query (``Run.load_around``), without its row lock: every change of its status or
    lease owner but a claim holds the flow execution's lock, which this operation holds
    (heartbeats only push the lease's expiry), and an update of it applies only if the
    status is still the one read (``read_unlocked``)."""
    return run.load_around(data["task_name"]).get(data["task_name"])


def _locked_task(run: Run, data: Mapping[str, Any]) -> TaskExecution | None:
    """The reported execution, row-locked: a claim or heartbeat of it commits first."""
    found = rows.select(
        TaskExecution,
        'WHERE t."flow_execution_id" = %s AND t."task_name" = %s'
        ' AND t."task_execution_idx" = %s' + rows.lock_clause(),
        [
            rows.db_value(TaskExecution, "flow_execution_id", run.execution.id),
            data["task_name"],
            data["task_execution_idx"],
        ],
    )
    return found[0] if found else None


def _create(
    run: Run, spec: dsl.TaskSpec, data: Mapping[str, Any], *, actor: str, guarded: bool = True
) -> TaskExecution | None:
    """Insert the reported execution; None if the key appeared meanwhile. Unguarded, the
    insert joins the transaction's merged writes and a collision fails the transaction."""
    values: dict[str, Any] = {name: data[name] for name in REPORTED_FIELDS if name in data}
    task = transitions.build_task_execution(
        execution=run.execution,
        task_name=spec.name,
        idx=data["task_execution_idx"],
        status=data["status"],
        executor=spec.task_executor_name,
        max_attempts=spec.retries.max_attempts,
        timeout_seconds=spec.timeout_seconds,
        actor=actor,
        worker_id=data.get("worker_id"),
        **values,
    )
    if not guarded:
        (created,) = transitions.create_task_executions([task], flow_id=run.flow_id)
        return created
    try:
        with transaction.atomic():
            (created,) = transitions.create_task_executions([task], flow_id=run.flow_id)
    except IntegrityError:
        return None
    return created


def _update(
    run: Run,
    task: TaskExecution,
    principal: Principal,
    data: Mapping[str, Any],
    *,
    actor: str,
    read_unlocked: bool = False,
) -> None:
    status = data["status"]
    sent = {name: data[name] for name in REPORTED_FIELDS if name in data}
    same = task.status == status and all(getattr(task, k) == v for k, v in sent.items())
    was_terminal = task.status in TASK_TERMINAL
    if was_terminal:
        if same:
            return  # a repeated report: answered with the stored record
        raise Conflict(
            f"The task execution is already {task.status}; only a person's edit (PUT) changes "
            "a finished task execution."
        )
    worker = data.get("worker_id")
    if task.status == TE.RUNNING and task.lease_owner:
        if not principal.is_service:
            raise Conflict(
                "A worker holds this task execution's lease: a person edits it with PUT."
            )
        if worker != task.lease_owner:
            raise Conflict("Only the worker holding the lease reports on this task execution.")
    if same:
        return
    transitions.change_task_status(
        task,
        status,
        flow_id=run.flow_id,
        actor=actor,
        worker_id=worker,
        read_unlocked=read_unlocked,
        **sent,
    )
    _after_change(run, task, was_terminal=was_terminal)


def _after_change(run: Run, task: TaskExecution, *, was_terminal: bool) -> None:
    if not run.is_latest(task):
        return  # an older attempt: history only
    run.record(task)
    finished = task.status in TASK_TERMINAL and not was_terminal
    # What it unblocks gets queued in this transaction: their outputs load with its own.
    downstream = run.definition.dag.downstream(task.task_name) if finished else ()
    sync_outputs(run, [task], prefetch=downstream)
    if finished:
        on_task_finished(run, task)
