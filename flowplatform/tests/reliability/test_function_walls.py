"""Row 3 — BFLA (broken function-level authorization).

- user keys on the service-only endpoints (task-status batch, claim, heartbeat, release) → 403;
- service keys where only a person may act (every /flows route, execute, cancel, deleting a
  flow execution) → 403;
- every method an operation's path does not document → 405 in the envelope, with ``Allow``;
- across all of it, only 401/403/405 are ever seen (figure), and nothing changes.

Bodies are valid and ids are the caller's own, so the refusal can only be about the function.
"""

from __future__ import annotations

from collections import Counter

import pytest

from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.reliability.walls import (
    METHODS,
    Operation,
    body_for,
    make_objects,
    operations,
    snapshot,
)

SERVICE_ONLY = {
    ("post", "/api/flow-executions/{flow_execution_id}/task-status"),
    ("post", "/api/task-executions/claim"),
    ("post", "/api/task-executions/{task_execution_id}/heartbeat"),
    ("post", "/api/task-executions/{task_execution_id}/release"),
}
USER_ONLY_EXTRA = {
    ("post", "/api/flow-executions/{flow_execution_id}/execute"),
    ("post", "/api/flow-executions/{flow_execution_id}/cancel"),
    ("delete", "/api/flow-executions/{flow_execution_id}"),
}


def _user_only(operation: Operation) -> bool:
    key = (operation.method, operation.path)
    return operation.path.startswith("/api/flows") or key in USER_ONLY_EXTRA


def _call(client, method: str, url: str, body):  # noqa: ANN001, ANN202
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.mark.django_db
def test_keys_of_the_wrong_kind_are_forbidden_and_undocumented_methods_are_405(tenant):
    mine = make_objects(tenant.organization, worker_id="w-1")
    before = snapshot(tenant.organization)
    statuses: Counter[int] = Counter()
    wrong: list[tuple] = []
    ops = operations()
    documented: dict[str, set[str]] = {}
    for operation in ops:
        documented.setdefault(operation.path, set()).add(operation.method)
    user, service = tenant.client("user"), tenant.client("service")

    kind_checks = 0
    for operation in ops:
        key = (operation.method, operation.path)
        if key in SERVICE_ONLY:
            client, expected = user, 403
        elif _user_only(operation):
            client, expected = service, 403
        else:
            continue
        response = _call(
            client, operation.method, operation.url(mine.ids), body_for(operation, mine)
        )
        kind_checks += 1
        statuses[response.status_code] += 1
        if response.status_code != expected or response.json()["error"]["code"] != "forbidden":
            wrong.append((str(operation), response.status_code, response.content[:200]))
    assert kind_checks == len(SERVICE_ONLY) + len(USER_ONLY_EXTRA) + sum(
        1 for op in ops if op.path.startswith("/api/flows")
    )

    swapped = 0
    for path, methods in documented.items():
        probe = Operation("get", path)
        url = probe.url(mine.ids)
        # A key the path's own operations accept: the refusal is then about the method.
        permitted = service if any((m, path) in SERVICE_ONLY for m in methods) else user
        for method in sorted(set(METHODS) - methods):
            response = _call(permitted, method, url, {} if method != "delete" else None)
            swapped += 1
            statuses[response.status_code] += 1
            body = response.json()
            allow = {m.strip().lower() for m in response.get("Allow", "").split(",")}
            if (
                response.status_code != 405
                or body["error"]["code"] != "method_not_allowed"
                or not methods <= allow
            ):
                wrong.append((f"{method.upper()} {path}", response.status_code, body))
    figure(
        3,
        "BFLA: wrong key kind and swapped methods",
        wrong_kind_requests=kind_checks,
        swapped_method_requests=swapped,
        statuses_seen=dict(sorted(statuses.items())),
    )
    assert wrong == []
    assert set(statuses) <= {401, 403, 405}
    assert snapshot(tenant.organization) == before


@pytest.mark.django_db
def test_read_only_keys_cannot_write_anywhere(tenant):
    from flowplatform.services import create_api_key

    mine = make_objects(tenant.organization, worker_id="w-1")
    before = snapshot(tenant.organization)
    _, user_ro = create_api_key(
        organization=tenant.organization, kind="user", user=tenant.user, read_only=True
    )
    _, service_ro = create_api_key(organization=tenant.organization, kind="service", read_only=True)
    from rest_framework.test import APIClient

    seen: Counter[int] = Counter()
    for raw in (user_ro, service_ro):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        for operation in operations():
            if operation.method == "get":
                continue
            response = _call(
                client, operation.method, operation.url(mine.ids), body_for(operation, mine)
            )
            seen[response.status_code] += 1
    figure(3, "read-only keys on every write", statuses_seen=dict(seen))
    assert set(seen) == {403}
    assert snapshot(tenant.organization) == before
