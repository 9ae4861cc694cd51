"""``GroupCommit``: batching of concurrent operations on one key (no database)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from executions.engine.group_commit import Entry, GroupCommit


class Recorder:
    """A ``decide`` that records its batches; the first batch waits until released, so the
    callers arriving meanwhile queue behind it."""

    def __init__(self, *, fail: set[str] = frozenset(), crash: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail
        self.crash = crash

    def __call__(self, entries: Sequence[Entry[str]]) -> None:
        self.batches.append([entry.work for entry in entries])
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(10)
        if self.crash and len(self.batches) == 2:
            raise RuntimeError("commit failed")
        for entry in entries:
            if entry.work in self.fail:
                entry.error = ValueError(entry.work)
            else:
                entry.result = entry.work.upper()


def wait_until(condition: Callable[[], object]) -> None:
    for _ in range(10_000):
        if condition():
            return
        threading.Event().wait(0.001)
    raise AssertionError("timed out")


class Callers:
    """Threads submitting to ``group``; their outcomes (results or errors) by work."""

    def __init__(self, group: GroupCommit[str], key: str = "k") -> None:
        self.group, self.key = group, key
        self.outcomes: dict[str, object] = {}
        self.threads: list[threading.Thread] = []

    def start(self, work: str) -> None:
        thread = threading.Thread(target=self._call, args=(work,))
        self.threads.append(thread)
        thread.start()

    def _call(self, work: str) -> None:
        try:
            self.outcomes[work] = self.group.submit(self.key, work)
        except Exception as exc:  # noqa: BLE001 - checked by the test
            self.outcomes[work] = exc

    def waiting(self) -> int:
        return len(self.group._waiting.get(self.key, ()))

    def join(self) -> dict[str, object]:
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()
        return self.outcomes


def submit_all(
    group: GroupCommit[str], recorder: Recorder, key: str, works: list[str]
) -> dict[str, object]:
    """Submit ``works[0]`` (it leads the first batch), wait until its batch is being decided,
    then submit the rest concurrently and release the first batch."""
    callers = Callers(group, key)
    callers.start(works[0])
    assert recorder.started.wait(10)
    for work in works[1:]:
        callers.start(work)
    wait_until(lambda: callers.waiting() == len(works) - 1)  # all behind the first batch
    recorder.release.set()
    return callers.join()


def test_callers_arriving_during_a_batch_are_decided_together_in_the_next():
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder)
    outcomes = submit_all(group, recorder, "fe-1", ["a", "b", "c", "d"])
    assert outcomes == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert recorder.batches[0] == ["a"]
    assert sorted(recorder.batches[1]) == ["b", "c", "d"]
    assert len(recorder.batches) == 2
    assert group._waiting == {}


def test_each_caller_gets_its_own_error():
    recorder = Recorder(fail={"c"})
    group: GroupCommit[str] = GroupCommit(recorder)
    outcomes = submit_all(group, recorder, "fe-1", ["a", "b", "c"])
    assert outcomes["a"] == "A"
    assert outcomes["b"] == "B"
    assert isinstance(outcomes["c"], ValueError)


def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_still_runs():
    recorder = Recorder(crash=True)
    group: GroupCommit[str] = GroupCommit(recorder)
    outcomes = submit_all(group, recorder, "fe-1", ["a", "b", "c"])
    assert outcomes["a"] == "A"
    assert all(isinstance(outcomes[w], RuntimeError) for w in ("b", "c"))
    assert group._waiting == {}
    assert group.submit("fe-1", "e") == "E"  # the key is free again


def test_batches_are_capped_and_the_rest_follow():
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder, max_batch=2)
    works = ["a", "b", "c", "d", "e"]
    outcomes = submit_all(group, recorder, "fe-1", works)
    assert outcomes == {w: w.upper() for w in works}
    assert [len(batch) for batch in recorder.batches] == [1, 2, 2]


def test_keys_do_not_wait_for_each_other():
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder)
    blocked = threading.Thread(target=group.submit, args=("fe-1", "a"))
    blocked.start()
    assert recorder.started.wait(10)
    # fe-1's batch is still being decided: fe-2's caller leads its own at once.
    assert group.submit("fe-2", "x") == "X"
    recorder.release.set()
    blocked.join(10)
    assert recorder.batches == [["a"], ["x"]]


@pytest.mark.parametrize("count", [1, 50])
def test_many_threads_every_caller_answered_once(count: int):
    seen: list[str] = []
    lock = threading.Lock()

    def decide(entries: Sequence[Entry[str]]) -> None:
        with lock:
            seen.extend(entry.work for entry in entries)
        for entry in entries:
            entry.result = entry.work

    group: GroupCommit[str] = GroupCommit(decide, max_batch=7)
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)

    def call(i: int) -> None:
        barrier.wait(10)
        results[i] = group.submit("k", f"w{i}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [f"w{i}" for i in range(count)]
    assert sorted(seen) == sorted(f"w{i}" for i in range(count))
    assert group._waiting == {}


def test_a_follow_up_runs_while_the_next_batch_is_decided_and_before_its_callers_wake():
    next_batch_started = threading.Event()
    batches: list[list[str]] = []
    first_started, release = threading.Event(), threading.Event()

    def decide(entries: Sequence[Entry[str]]):  # noqa: ANN202
        batches.append([entry.work for entry in entries])
        if len(batches) == 1:
            first_started.set()
            assert release.wait(10)

            def follow_up() -> None:
                # The batch waiting behind this one goes ahead without waiting for this.
                assert next_batch_started.wait(10)
                for entry in entries:
                    entry.result = entry.work.upper()

            return follow_up
        next_batch_started.set()
        for entry in entries:
            entry.result = entry.work.upper()
        return None

    callers = Callers(GroupCommit(decide))
    callers.start("a")
    assert first_started.wait(10)
    callers.start("b")
    wait_until(callers.waiting)
    release.set()
    assert callers.join() == {"a": "A", "b": "B"}
    assert batches == [["a"], ["b"]]


def test_a_follow_up_that_fails_answers_its_callers_with_the_error():
    def decide(entries: Sequence[Entry[str]]):  # noqa: ANN202
        def follow_up() -> None:
            raise RuntimeError("follow-up failed")

        return follow_up

    group: GroupCommit[str] = GroupCommit(decide)
    with pytest.raises(RuntimeError, match="follow-up failed"):
        group.submit("k", "a")
    assert group._waiting == {}


def test_a_batch_takes_in_what_queued_while_it_waited():
    arrived, taken = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def decide(entries):  # noqa: ANN001, ANN202
        if entries[0].work == "a":
            assert arrived.wait(10)  # e.g. waiting for a lock while "b" queues
            entries.take_more()
            taken.set()
        batches.append([entry.work for entry in entries])
        for entry in entries:
            entry.result = entry.work.upper()
        return None

    group: GroupCommit[str] = GroupCommit(decide)
    callers = Callers(group)
    callers.start("a")
    wait_until(lambda: "k" in group._waiting)
    callers.start("b")
    wait_until(callers.waiting)
    arrived.set()
    assert callers.join() == {"a": "A", "b": "B"}
    assert taken.is_set()
    assert batches == [["a", "b"]]
    assert group._waiting == {}


def test_a_batch_takes_in_only_what_it_accepts_and_the_rest_follows_in_order():
    arrived, taken = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def decide(entries):  # noqa: ANN001, ANN202
        if entries[0].work == "a1":
            assert arrived.wait(10)  # e.g. its locks held; "b1", "a2", "b2" queued meanwhile
            entries.take_more(lambda entry: entry.work.startswith("a"))
            taken.set()
        batches.append([entry.work for entry in entries])
        for entry in entries:
            entry.result = entry.work.upper()
        return None

    group: GroupCommit[str] = GroupCommit(decide)
    callers = Callers(group)
    callers.start("a1")
    wait_until(lambda: "k" in group._waiting)
    for work in ("b1", "a2", "b2"):
        callers.start(work)
        wait_until(lambda: callers.waiting() >= 1 and len(group._waiting["k"]) >= 1)
    wait_until(lambda: len(group._waiting["k"]) == 3)
    arrived.set()
    assert callers.join() == {"a1": "A1", "b1": "B1", "a2": "A2", "b2": "B2"}
    assert taken.is_set()
    assert batches == [["a1", "a2"], ["b1", "b2"]]


# -- callers in an event loop (``submit_async``) ----------------------------------------------


class Starter:
    """A ``start`` that runs each batch on a thread of its own, and counts them."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def __call__(self, lead: Callable[[], None]) -> None:
        thread = threading.Thread(target=lead)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)


def test_callers_in_an_event_loop_wait_there_and_batches_run_on_started_threads():
    import asyncio

    recorder = Recorder()
    group = GroupCommit(recorder)
    start = Starter()

    async def main() -> list[object]:
        first = asyncio.ensure_future(group.submit_async("k", "a", start=start))
        await asyncio.to_thread(recorder.started.wait, 10)
        rest = [asyncio.ensure_future(group.submit_async("k", w, start=start)) for w in "bcd"]
        await asyncio.sleep(0.05)  # queued behind the first batch
        loop_thread = threading.current_thread()
        recorder.release.set()
        results = await asyncio.gather(first, *rest)
        assert loop_thread not in start.threads
        return results

    assert asyncio.run(main()) == ["A", "B", "C", "D"]
    start.join()
    assert recorder.batches == [["a"], ["b", "c", "d"]]
    assert len(start.threads) == 2  # one thread per batch, none per caller


def test_threads_and_event_loop_callers_share_batches_and_hand_the_lead_over():
    import asyncio

    recorder = Recorder(fail={"y"})
    group = GroupCommit(recorder)
    start = Starter()
    callers = Callers(group)
    callers.start("a")  # a thread leads the first batch
    assert recorder.started.wait(10)

    async def main() -> list[object]:
        mine = [asyncio.ensure_future(group.submit_async("k", w, start=start)) for w in "xy"]
        await asyncio.sleep(0.05)
        callers.start("b")  # a thread waits behind them
        await asyncio.to_thread(wait_until, lambda: len(group._waiting["k"]) == 3)
        recorder.release.set()
        return await asyncio.gather(*mine, return_exceptions=True)

    x, y = asyncio.run(main())
    callers.join()
    start.join()
    assert x == "X" and isinstance(y, ValueError)
    assert callers.outcomes == {"a": "A", "b": "B"}
    # The second batch (led for an event loop caller) ran on a started thread.
    assert recorder.batches == [["a"], ["x", "y", "b"]]
    assert len(start.threads) == 1


def test_a_cancelled_caller_is_decided_all_the_same_and_nobody_waits_for_it():
    import asyncio

    recorder = Recorder()
    group = GroupCommit(recorder)
    start = Starter()

    async def main() -> object:
        first = asyncio.ensure_future(group.submit_async("k", "a", start=start))
        await asyncio.to_thread(recorder.started.wait, 10)
        gone = asyncio.ensure_future(group.submit_async("k", "b", start=start))
        after = asyncio.ensure_future(group.submit_async("k", "c", start=start))
        await asyncio.sleep(0.05)
        gone.cancel()  # the next batch is to be led for it
        recorder.release.set()
        await first
        return await after

    assert asyncio.run(main()) == "C"
    start.join()
    assert recorder.batches == [["a"], ["b", "c"]]
