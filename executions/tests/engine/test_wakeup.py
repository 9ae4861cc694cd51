"""Long-polling claims are woken one per queued task, only when they serve its executor."""

from __future__ import annotations

import asyncio
from collections import Counter

from executions.engine.wakeup import Waiter, notify

ORG, OTHER = "org-1", "org-2"


async def woken(waiters: list[Waiter]) -> list[bool]:
    """Which waiters were woken (each waits a moment, as the claim view does)."""
    return list(await asyncio.gather(*(w.wait(0.05) for w in waiters)))


def test_one_waiter_is_woken_per_queued_task_oldest_first() -> None:
    async def scenario() -> tuple[list[bool], list[bool]]:
        waiters = [Waiter(ORG, ["noop"]) for _ in range(3)]
        for waiter in waiters:
            waiter.__enter__()
        try:
            notify(Counter({(ORG, "noop"): 1}))
            first = await woken(waiters)
            notify(Counter({(ORG, "noop"): 2}))
            second = await woken(waiters)
        finally:
            for waiter in waiters:
                waiter.__exit__(None, None, None)
        return first, second

    first, second = asyncio.run(scenario())
    assert first == [True, False, False]
    assert second == [True, True, False]


def test_only_waiters_serving_the_executor_of_the_organization_are_woken() -> None:
    async def scenario() -> list[bool]:
        waiters = [
            Waiter(ORG, ["http_request"]),
            Waiter(OTHER, ["noop"]),
            Waiter(ORG, ["noop", "python"]),
            Waiter(ORG),  # any executor
        ]
        for waiter in waiters:
            waiter.__enter__()
        try:
            notify(Counter({(ORG, "noop"): 2}))
            return await woken(waiters)
        finally:
            for waiter in waiters:
                waiter.__exit__(None, None, None)

    assert asyncio.run(scenario()) == [False, False, True, True]


def test_a_wake_up_a_leaving_claim_did_not_use_goes_to_the_next_waiter() -> None:
    async def scenario() -> list[bool]:
        leaving, staying = Waiter(ORG, ["noop"]), Waiter(ORG, ["noop"])
        leaving.__enter__()
        staying.__enter__()
        try:
            notify(Counter({(ORG, "noop"): 1}))  # targets the oldest: ``leaving``
            leaving.__exit__(None, None, None)  # answering with what it claimed before
            return await woken([staying])
        finally:
            staying.__exit__(None, None, None)

    assert asyncio.run(scenario()) == [True]


def test_a_woken_waiter_can_be_woken_again_after_its_attempt() -> None:
    async def scenario() -> list[bool]:
        waiter = Waiter(ORG, ["noop"])
        with waiter:
            results = []
            for _ in range(2):
                notify(Counter({(ORG, "noop"): 1}))
                results.append(await waiter.wait(0.5))
            results.append(await waiter.wait(0.05))  # nothing queued: times out
            return results

    assert asyncio.run(scenario()) == [True, True, False]
