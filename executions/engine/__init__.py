"""The execution engine: transactional functions that schedule tasks, react to reports,
retry, cancel, re-execute, mark staleness and hand out leases.

Every decision about one flow execution runs in one transaction holding that flow
execution's row lock (``lock_flow_execution``), so concurrent reports never double-schedule;
``transitions`` is the one module that changes statuses. Modules: ``state`` (the lock, the
latest execution of each task), ``scheduling`` (queueing, retries, finishing), ``lifecycle``
(start, cancel, re-execute, delete), ``capacity`` (the per-organization cap), ``staleness``,
``leases`` (claims, heartbeats, releases, expiry), ``events`` (one outbox batch per
operation), ``definitions`` (parsed definitions cached by flow and version), ``wakeup``.

Decisions where DESIGN is silent:
- Failing fast: when a task's attempts run out (or its input cannot be resolved, which is
  never retried) the flow execution fails at once; queued and awaiting tasks are cancelled,
  running ones may finish and report (recorded, nothing new is scheduled).
  ``reexecute(only_failed=True)`` then redoes every task whose latest execution is not
  completed: the failed ones, what they blocked and what failing fast cancelled.
- A task reported ``cancelled`` although nobody asked cancels its flow execution.
- Staleness keeps the execution's ``status`` and sets ``stale_status``/``stale_reason``; a
  task queued from a stale output is stale too. A finished flow execution with stale tasks is
  ``stale``; one still running stays running (without ``execute_flow`` its stale, finished
  tasks are not redone and it ends ``completed`` → ``stale``).
- Re-executions (and ``execute_flow``) restart a finished flow execution at once, even when
  its organization is at ``max_concurrent_executions``: the cap orders fresh starts only.
- Leases: a running task whose lease expires fails with ``LeaseExpired`` and is retried like
  any failure; a release gives the task back without using an attempt.
- Task outputs follow each task's latest execution from the moment it is queued.
"""
