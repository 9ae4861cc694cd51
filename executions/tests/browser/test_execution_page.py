"""The live execution page in headless Chromium, against uvicorn and a real worker."""

from __future__ import annotations

import re
from typing import Any

import pytest

from executions.tests.browser.helpers import (
    Stack,
    create_flow,
    screenshot,
    start_execution,
    wait_for_execution,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAMES = ["extract", "clean", "enrich", "join", "report"]
DOWNSTREAM_OF_CLEAN = ["join", "report"]


def five_tasks(sleep_seconds: float) -> dict[str, Any]:
    """extract → (clean, enrich) → join → report; noop tasks whose outputs carry upstream data."""

    def task(name: str, output: Any) -> dict[str, Any]:
        parameters = {"sleep_seconds": sleep_seconds, "output": output}
        return {"name": name, "task_executor_name": "noop", "parameters": parameters}

    return {
        "tasks": [
            task("extract", {"rows": [1, 2, 3]}),
            task("clean", {"cleaned": "{{extract.output.rows}}"}),
            task("enrich", {"source": "{{input.source}}"}),
            task("join", {"clean": "{{clean.output}}", "enrich": "{{enrich.output}}"}),
            task("report", {"report": "{{join.output}}"}),
        ]
    }


def expect_all_completed(page: Any, timeout: float = 30_000) -> None:
    from playwright.sync_api import expect

    expect(page.locator('button.node[data-status="completed"]')).to_have_count(5, timeout=timeout)
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#execution-progress")).to_have_text("5 of 5 tasks completed")


def connection_text(page: Any) -> Any:
    return page.locator("#connection .conn-text")


def trails(page: Any) -> dict[str, list[str]]:
    return page.evaluate("window.flowplatformPage.state.trail")


def test_started_execution_updates_live_until_every_task_completes(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    flow_id = create_flow(stack, five_tasks(0.8), "Five live tasks")
    page.goto("/")
    page.get_by_role("link", name="Five live tasks").click()
    expect(page.locator(".dag-slot")).to_have_count(5)
    page.get_by_label("Input (JSON)").fill('{"source": "crm"')
    page.get_by_role("button", name="Start execution").click()
    expect(page.get_by_role("alert")).to_contain_text("Not valid JSON")  # nothing started

    page.get_by_label("Input (JSON)").fill('{"source": "crm"}')
    page.get_by_role("button", name="Start execution").click()
    page.wait_for_url(re.compile(r"/executions/[0-9a-f-]{36}$"))
    page.evaluate("window.__sameDocument = true")
    expect(connection_text(page)).to_have_text("connected")
    page.wait_for_function(
        """() => {
            const done = document.querySelectorAll('button.node[data-status="completed"]').length;
            return done >= 1 && done < 5 && document.querySelector(
                'button.node[data-status="running"], button.node[data-status="queued"]');
        }"""
    )
    screenshot(page, "execution-mid-run")

    expect_all_completed(page)
    screenshot(page, "execution-finished")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    seen = trails(page)
    assert {name: statuses[-1] for name, statuses in seen.items()} == dict.fromkeys(
        NAMES, "completed"
    )
    # The last task was drawn before it ran, then followed through its states live.
    assert seen["report"][0] == "pending" and "running" in seen["report"], seen
    expect(page.locator('button.node[data-task="report"] .node-attempt')).to_have_text("#0")
    expect(page.locator('button.node[data-task="report"] .node-time')).to_contain_text("took")

    with stack.api() as api:
        executions = api.get("/api/flow-executions", params={"flow_id": flow_id}).json()
    assert [e["input"] for e in executions] == [{"source": "crm"}]


def test_edited_output_reruns_exactly_the_downstream_tasks(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    flow_id = create_flow(stack, five_tasks(0.4), "Five tasks to correct")
    execution_id = start_execution(stack, flow_id, {"source": "crm"})
    wait_for_execution(stack, execution_id, "completed")
    page.goto(f"/executions/{execution_id}")
    expect(connection_text(page)).to_have_text("connected")
    expect_all_completed(page)

    # Keyboard: nodes are buttons; Enter opens the details, focus moves into them.
    page.locator('button.node[data-task="clean"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#task-panel")).to_be_visible()
    expect(page.locator("#panel-title")).to_be_focused()
    expect(page.locator("#panel-output")).to_contain_text('"cleaned"')
    expect(page.locator("#panel-history")).to_be_attached()
    editor = page.get_by_label("Output (JSON)")
    expect(editor).to_have_value(re.compile(r'"cleaned"'))
    expect(page.locator("#edit-hint")).to_have_text("Saving marks join, report stale.")

    # "Save" alone: exactly the downstream tasks go stale and stay so.
    editor.fill('{"cleaned": ["first draft"]}')
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#edit-message")).to_have_text("Saved. join, report marked stale.")
    expect(page.locator('button.node[data-status="stale"]')).to_have_count(2)
    for name in DOWNSTREAM_OF_CLEAN:
        expect(page.locator(f'button.node[data-task="{name}"]')).to_have_attribute(
            "data-status", "stale"
        )
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "stale")
    page.wait_for_timeout(1000)  # nothing re-runs on its own
    expect(page.locator('button.node[data-status="stale"]')).to_have_count(2)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "execution-stale")

    # "Save and re-run downstream": the stale tasks run again, live.
    editor.fill('{"cleaned": ["corrected by a person"]}')
    page.get_by_role("button", name="Save and re-run downstream").click()
    expect(page.locator("#edit-message")).to_have_text("Saved. Re-running join, report.")
    for name in DOWNSTREAM_OF_CLEAN:
        node = page.locator(f'button.node[data-task="{name}"]')
        expect(node.locator(".node-attempt")).to_have_text("#1", timeout=30_000)
        expect(node).to_have_attribute("data-status", "completed", timeout=30_000)
    expect_all_completed(page)
    seen = trails(page)
    for name in DOWNSTREAM_OF_CLEAN:
        assert "stale" in seen[name] and seen[name][-1] == "completed", seen
    for name in ("extract", "clean", "enrich"):
        assert "stale" not in seen[name], seen
    expect(page.locator('button.node[data-task="clean"] .node-edited')).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "execution-after-rerun")

    # The re-run used the corrected output.
    page.keyboard.press("Escape")
    expect(page.locator('button.node[data-task="clean"]')).to_be_focused()
    page.locator('button.node[data-task="join"]').click()
    expect(page.locator("#panel-output")).to_contain_text("corrected by a person")

    # Someone else edits while this person types: saving answers 409 and changes nothing.
    page.locator('button.node[data-task="enrich"]').click()
    expect(editor).to_have_value(re.compile(r'"source"'))
    editor.fill('{"source": "mine"}')
    with stack.api() as api:
        current = api.get(
            "/api/task-executions",
            params={"flow_execution_id": execution_id, "task_name": "enrich"},
        ).json()[0]
        theirs = api.put(
            "/api/task-executions",
            params={"execute_flow": "false"},
            json={**current, "output": {"source": "theirs"}},
        )
        assert theirs.status_code == 200, theirs.text
    page.wait_for_function(
        "(t) => window.flowplatformPage.state.tasks.enrich.updated_at === t",
        arg=theirs.json()["updated_at"],
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#edit-message")).to_contain_text(
        "changed by someone else — reload to see the latest version"
    )
    with stack.api() as api:
        latest = api.get(
            "/api/task-executions",
            params={"flow_execution_id": execution_id, "task_name": "enrich"},
        ).json()[0]
    assert latest["output"] == {"source": "theirs"}


def test_reconnecting_replays_every_missed_event(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    flow_id = create_flow(stack, five_tasks(1.0), "Five tasks over a bad network")
    execution_id = start_execution(stack, flow_id, {"source": "crm"})
    page.goto(f"/executions/{execution_id}")
    expect(connection_text(page)).to_have_text("connected")

    # The network goes away mid-run; the run finishes without the page.
    page.context.set_offline(True)
    expect(connection_text(page)).to_have_text("offline — will reconnect when the network is back")
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    completed_while_offline = page.locator('button.node[data-status="completed"]').count()
    assert completed_while_offline < 5
    wait_for_execution(stack, execution_id, "completed")
    page.wait_for_timeout(300)
    assert page.locator('button.node[data-status="completed"]').count() == completed_while_offline

    page.context.set_offline(False)
    expect(connection_text(page)).to_have_text("connected")
    expect_all_completed(page)

    # The socket drops (no offline signal) while someone re-runs part of the flow.
    page.evaluate("window.flowplatformPage.live.drop()")
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    with stack.api() as api:
        join = api.get(
            "/api/task-executions",
            params={"flow_execution_id": execution_id, "task_name": "join"},
        ).json()[0]
        edited = api.put(
            "/api/task-executions",
            params={"execute_flow": "true"},
            json={**join, "output": {"joined": "by hand"}},
        )
        assert edited.status_code == 200, edited.text
    expect(connection_text(page)).to_have_text("connected")
    report = page.locator('button.node[data-task="report"]')
    expect(report.locator(".node-attempt")).to_have_text("#1", timeout=30_000)
    expect_all_completed(page)
    assert "stale" in trails(page)["report"]
    assert page.evaluate("window.flowplatformPage.live.connects") >= 3
    with stack.api() as api:
        final = api.get("/api/task-executions", params={"flow_execution_id": execution_id}).json()
    latest = {}
    for te in sorted(final, key=lambda te: te["task_execution_idx"]):
        latest[te["task_name"]] = te
    shown = page.evaluate(
        "Object.fromEntries(Object.entries(window.flowplatformPage.state.tasks)"
        ".map(([n, t]) => [n, [t.id, t.status, t.updated_at]]))"
    )
    assert shown == {n: [t["id"], t["status"], t["updated_at"]] for n, t in latest.items()}
