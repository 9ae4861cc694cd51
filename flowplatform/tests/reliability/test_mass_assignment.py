"""Row 4 — mass assignment: fields only the server sets, sent in the body of every write
endpoint, are ignored or rejected (422), never stored.

The fields: ``id``, ``organization_id`` (the caller's: ignored; another organization's: 403 on
every endpoint), ``flow_version``/``version``, the lease (``lease_owner``,
``lease_expires_at``, ``lease_seconds``), ``attempt``/``max_attempts``, every timestamp
(``created_at``, ``updated_at``, ``started_at``, ``completed_at``, ``available_at``), the
bookkeeping (``edited_status``, ``stale_status``, ``task_executor_name``, ``cancel_requested``,
``deleted``, ``modified_by`` for user keys). Each gets a sentinel value; afterwards no row of
any table holds one. Figure: requests, accepted (fields ignored), rejected, persisted (0).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import models

from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution, TaskStatus
from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.walls import Objects, make_objects
from outputs.models import TaskOutput

SENTINEL_ID = "00000000-dead-4bad-8bad-000000000001"
PAST = "2001-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"
ATTACKER = "attacker"
BIG = 99

SERVER_FIELDS: dict[str, Any] = {
    "id": SENTINEL_ID,
    "flow_version": BIG,
    "version": BIG,
    "lease_owner": ATTACKER,
    "lease_expires_at": FUTURE,
    "lease_seconds": 10**6,
    "attempt": BIG,
    "max_attempts": BIG,
    "created_at": PAST,
    "updated_at": PAST,
    "started_at": PAST,
    "completed_at": PAST,
    "available_at": FUTURE,
    "edited_status": "edited_reexecuted",
    "stale_status": "stale",
    "stale_reason": {"by": ATTACKER},
    "task_executor_name": ATTACKER,
    "cancel_requested": True,
    "deleted": True,
    "pending_tasks": [ATTACKER],
    "seq": BIG,
}
MODELS = [Flow, FlowVersion, FlowExecution, TaskExecution, TaskStatus, TaskOutput]


def persisted_sentinels(organization: Any) -> list[str]:
    """Every place a sentinel value ended up in the organization's rows."""
    found = []
    for model in MODELS:
        rows = model.objects.filter(organization=organization)
        checks = {"pk": SENTINEL_ID}
        for field in model._meta.concrete_fields:
            if isinstance(field, models.DateTimeField):
                checks[f"{field.name}__year__in"] = [2001, 2099]
            elif field.name in ("flow_version", "version", "attempt", "max_attempts", "seq"):
                checks[field.name] = BIG
            elif field.name in ("lease_owner", "task_executor_name", "modified_by", "created_by"):
                checks[field.name] = ATTACKER
        for lookup, value in checks.items():
            for row in rows.filter(**{lookup: value}):
                found.append(f"{model.__name__}.{lookup}={value!r} ({row.pk})")
    return found


def writes(objects: Objects, flow_execution_id: str) -> list[tuple[str, str, str, dict]]:
    """(key kind, method, url, valid body) for every write endpoint."""
    te, fe = objects.task_execution_id, flow_execution_id
    return [
        ("user", "post", "/api/flows", {"display_name": "new", "definition": {"tasks": []}}),
        ("user", "patch", f"/api/flows/{objects.flow_id}", {"description": "d"}),
        (
            "user",
            "put",
            f"/api/flows/{objects.flow_id}/definition",
            {"definition": {"tasks": [{"name": "a", "task_executor_name": "noop"}]}},
        ),
        ("user", "post", f"/api/flows/{objects.flow_id}/validate", {}),
        ("user", "post", "/api/flow-executions", {"flow_id": objects.flow_id, "input": {}}),
        (
            "service",
            "post",
            "/api/task-executions",
            {
                "flow_execution_id": fe,
                "task_name": "a",
                "task_execution_idx": 0,
                "status": "completed",
                "output": {"ok": True},
            },
        ),
        ("user", "put", "/api/task-executions", {"id": te, "output": "edited"}),
        (
            "service",
            "post",
            "/api/task-outputs",
            {"flow_execution_id": fe, "task_name": "b", "summary": {"n": 1}},
        ),
        (
            "service",
            "post",
            f"/api/flow-executions/{fe}/task-status",
            {"statuses": [{"task_name": "a", "status": "x", **SERVER_FIELDS}]},
        ),
        (
            "service",
            "post",
            "/api/task-executions/claim",
            {"worker_id": "w-2", "executors": ["noop"]},
        ),
        ("service", "post", f"/api/task-executions/{te}/heartbeat", {"worker_id": "w-1"}),
        ("user", "post", f"/api/flow-executions/{fe}/cancel", {}),
        ("user", "post", f"/api/flow-executions/{fe}/execute", {}),
        ("service", "post", f"/api/task-executions/{te}/release", {"worker_id": "w-1"}),
    ]


@pytest.mark.django_db
def test_server_set_fields_in_bodies_are_never_stored(tenant):
    objects = make_objects(tenant.organization, worker_id="w-1")
    organization_id = str(tenant.organization.id)
    outcomes: Counter[str] = Counter()
    problems = []
    for kind, method, url, body in writes(objects, objects.flow_execution_id):
        sent = {**body, **SERVER_FIELDS, "organization_id": organization_id}
        if kind == "user":
            sent["modified_by"] = ATTACKER
        sent.update(body)  # the endpoint's own fields keep their valid values
        response = getattr(tenant.client(kind), method)(url, sent, format="json")
        if response.status_code == 422:
            outcomes["rejected (422)"] += 1
        elif response.status_code < 300:
            outcomes["accepted, fields ignored"] += 1
        elif response.status_code == 409:
            outcomes["conflict (409), state unchanged"] += 1
        else:
            problems.append((method, url, response.status_code, response.content[:300]))
        persisted = persisted_sentinels(tenant.organization)
        if persisted:
            problems.append((method, url, "persisted", persisted))
    figure(
        4,
        "mass assignment: server fields in every write body",
        endpoints=sum(outcomes.values()) + len(problems),
        fields_sent=len(SERVER_FIELDS) + 1,
        outcomes=dict(outcomes),
        persisted=len(persisted_sentinels(tenant.organization)),
    )
    assert problems == []


@pytest.mark.django_db
def test_another_organization_s_id_in_any_write_body_is_403(tenant, outsider):
    objects = make_objects(tenant.organization, worker_id="w-1")
    foreign = str(outsider.organization.id)
    counts = {model: model.objects.count() for model in MODELS}
    statuses: Counter[int] = Counter()
    for kind, method, url, body in writes(objects, objects.flow_execution_id):
        response = getattr(tenant.client(kind), method)(
            url, {**body, "organization_id": foreign}, format="json"
        )
        statuses[response.status_code] += 1
        assert response.status_code == 403, (method, url, response.content)
        assert response.json()["error"]["code"] == "forbidden"
    assert {model: model.objects.count() for model in MODELS} == counts  # nothing written
    figure(4, "organization_id of another organization", statuses_seen=dict(statuses))
    # The caller's own id, or none, is accepted (inherited from the credential).
    for named in (str(tenant.organization.id), None):
        body = {"flow_id": objects.flow_id} | ({"organization_id": named} if named else {})
        accepted = tenant.client("user").post("/api/flow-executions", body, format="json")
        assert accepted.status_code == 201, accepted.content
        assert accepted.json()["organization_id"] == str(tenant.organization.id)
