"""A worker's report that also claims its next work (``claim`` in ``POST /api/task-executions``)."""

from __future__ import annotations

from collections import Counter

import pytest

from executions.engine import wakeup
from executions.engine.group_commit import Entry
from executions.enums import TaskExecutionStatus
from executions.models import TaskExecution
from executions.tests.engine.factories import (
    DIAMOND,
    Worker,
    completed_report,
    latest,
    shape_definition,
    start,
)
from executions.tests.services.batching import decide
from flowplatform.authentication import principal_for_key

URL = "/api/task-executions"
TE = TaskExecutionStatus
CLAIMED_KEYS = {"lease_expires_at", "lease_seconds", "timeout_seconds", "flow_id"}


@pytest.fixture
def diamond(tenant):  # noqa: ANN001, ANN201
    execution = start(tenant.organization, shape_definition(DIAMOND))
    (a,) = Worker(tenant.client("service")).claim()
    return execution, a


@pytest.fixture
def wakeups(monkeypatch):  # noqa: ANN001, ANN201
    sent: Counter = Counter()
    monkeypatch.setattr(wakeup, "notify", lambda work: sent.update(work))
    return sent


def test_the_report_hands_the_worker_what_it_unblocked_and_wakes_no_claim_for_it(
    tenant, diamond, wakeups, django_capture_on_commit_callbacks
):
    execution, a = diamond
    client = tenant.client("service")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            URL, completed_report(a, claim={"executors": ["noop"], "limit": 2}), format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["task_name"] == "a" and body["status"] == "completed"
    claimed = body["claimed"]
    assert sorted(item["task_name"] for item in claimed) == ["b", "c"]
    assert all(CLAIMED_KEYS <= item.keys() and item["status"] == "running" for item in claimed)
    for name in ("b", "c"):
        row = latest(execution, name)
        assert (row.status, row.lease_owner) == (TE.RUNNING, "worker-1")
    assert sum(wakeups.values()) == 0  # both were handed out: no long-poll woken for them


def test_what_the_report_does_not_take_still_wakes_claims(
    tenant, diamond, wakeups, django_capture_on_commit_callbacks
):
    execution, a = diamond
    org = str(tenant.organization.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client("service").post(
            URL, completed_report(a, claim={"executors": ["noop"]}), format="json"
        )
    (claimed,) = response.json()["claimed"]  # limit defaults to 1
    other = ({"b", "c"} - {claimed["task_name"]}).pop()
    assert latest(execution, other).status == TE.QUEUED
    assert wakeups == Counter({(org, "noop"): 1})


def test_without_claim_the_response_is_the_record_alone(tenant, diamond):
    _, a = diamond
    response = tenant.client("service").post(URL, completed_report(a), format="json")
    assert response.status_code == 200
    assert "claimed" not in response.json()
    assert not TaskExecution.objects.filter(status=TE.RUNNING).exists()


def test_a_claim_with_nothing_queued_answers_an_empty_list(tenant, diamond):
    execution, a = diamond
    client = tenant.client("service")
    claim = {"executors": ["http_request"], "limit": 3}  # nothing of that executor is queued
    response = client.post(URL, completed_report(a, claim=claim), format="json")
    assert response.status_code == 200
    assert response.json()["claimed"] == []
    assert latest(execution, "b").status == TE.QUEUED


@pytest.mark.parametrize(
    ("claim", "extra", "status"),
    [
        ({"executors": ["noop"], "limit": 0}, {}, 422),
        ({"executors": ["noop"], "limit": 51}, {}, 422),
        ({"executors": []}, {}, 422),
        ({"limit": 1}, {}, 422),
        ("noop", {}, 422),
        ({"executors": ["noop"]}, {"worker_id": None}, 400),
    ],
)
def test_bad_claims_are_refused_and_change_nothing(tenant, diamond, claim, extra, status):
    execution, a = diamond
    body = {**completed_report(a, claim=claim), **extra}
    response = tenant.client("service").post(URL, body, format="json")
    assert response.status_code == status, response.content
    assert latest(execution, "a").status == TE.RUNNING  # the report was not applied either
    assert not TaskExecution.objects.filter(task_name__in=["b", "c"]).exists()


def test_user_keys_do_not_claim(tenant, diamond):
    execution, a = diamond
    body = completed_report(a, claim={"executors": ["noop"]})
    response = tenant.client("user").post(URL, body, format="json")
    assert response.status_code == 403
    assert latest(execution, "a").status == TE.RUNNING


@pytest.mark.django_db(transaction=True)
def test_reports_decided_together_claim_distinct_work(tenant):
    execution = start(tenant.organization, shape_definition(DIAMOND))
    worker = Worker(tenant.client("service"))
    (a,) = worker.claim()
    assert worker.report(a).status_code == 200
    b, c = sorted(worker.claim(), key=lambda t: t["task_name"])
    principal = principal_for_key(tenant.service_api_key)
    claim = {"executors": ["noop"], "limit": 1}
    entries = [
        Entry((principal, completed_report(b, claim=claim))),
        Entry((principal, completed_report(c, claim=claim, worker_id="worker-1"))),
    ]
    decide(entries)
    first, second = (entry.result for entry in entries)
    # The claims follow every report of the batch: d, ready once both are in, goes to the
    # first claim, and only once.
    assert [item["task_name"] for item in first.claimed] == ["d"]
    assert second.claimed == []
    assert latest(execution, "d").status == TE.RUNNING
