"""Data for the admin screenshot: a realistic flow execution in two organizations.

``prepare()`` runs inside Django (``manage.py shell``) and makes organizations, a staff user,
API keys and flows through the services; ``drive()`` then plays the workers and a person
over the public HTTP API of the running server, so the engine sets every status itself.
"""

from __future__ import annotations

from typing import Any

STAFF_USERNAME = "screenshot-staff"
STAFF_PASSWORD = "screenshot-password"

CUSTOMER_IMPORT = {
    "tasks": [
        {
            "name": "fetch",
            "task_executor_name": "noop",
            "description": "Download the customer export.",
        },
        {"name": "extract", "task_executor_name": "noop", "depends_on": ["fetch"]},
        {"name": "validate", "task_executor_name": "noop", "depends_on": ["extract"]},
        {"name": "publish", "task_executor_name": "noop", "depends_on": ["validate"]},
    ]
}


def prepare() -> dict[str, Any]:
    """Organizations, staff user, keys and flows; returns what ``drive`` needs."""
    from executions.services.flows import create_flow
    from flowplatform.services import create_api_key, create_organization, get_or_create_user

    get_or_create_user(username=STAFF_USERNAME, password=STAFF_PASSWORD, is_staff=True)
    out: dict[str, Any] = {}
    for name in ("acme", "globex"):
        org = create_organization(name=name)
        owner = get_or_create_user(username=f"{name}-owner")
        _, user_key = create_api_key(organization=org, kind="user", user=owner, name="owner")
        _, service_key = create_api_key(organization=org, kind="service", name="workers")
        flow = create_flow(
            organization=org,
            actor=str(owner.pk),
            display_name=f"Customer import ({name})",
            description="Nightly import of the CRM export.",
            definition=CUSTOMER_IMPORT,
            tags=["nightly", "crm"],
        )
        out[name] = {"user_key": user_key, "service_key": service_key, "flow_id": str(flow.id)}
    return out


def drive(base_url: str, setup: dict[str, Any]) -> dict[str, str]:
    """Run one execution per organization over the API; returns their ids.

    acme: every task completes, then a person corrects ``extract``'s output, which makes
    ``validate`` and ``publish`` stale. globex: ``fetch`` fails.
    """
    import httpx

    ids: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=30) as http:

        def call(method: str, path: str, key: str, body: Any = None, **params: Any) -> Any:
            response = http.request(
                method,
                f"/api/{path}",
                json=body,
                params=params or None,
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code < 300, (method, path, response.text)
            return response.json() if response.content else None

        for name, scenario in (("acme", _acme), ("globex", _globex)):
            keys = setup[name]
            execution = call(
                "POST",
                "flow-executions",
                keys["user_key"],
                {"flow_id": keys["flow_id"], "input": {"source": f"s3://{name}/crm/export.csv"}},
            )
            ids[name] = execution["id"]
            scenario(call, keys, execution["id"])
    return ids


def _report(call, key: str, fe: str, task: str, status: str, **fields: Any) -> dict:  # noqa: ANN001
    body = {
        "flow_execution_id": fe,
        "task_name": task,
        "task_execution_idx": 0,
        "status": status,
        **fields,
    }
    return call("POST", "task-executions", key, body)


def _acme(call, keys: dict[str, str], fe: str) -> None:  # noqa: ANN001
    service = keys["service_key"]
    results = {
        "fetch": (
            {"rows": 1204, "bytes": 88213, "url": "s3://acme/crm/export.csv"},
            {"status_code": 200, "response_time_ms": 412},
            ["downloading", "parsing", "done"],
        ),
        "extract": (
            {"customers": 1198, "skipped": 6, "columns": ["id", "email", "country"]},
            {"customers": 1198},
            ["mapping columns", "done"],
        ),
        "validate": (
            {"valid_rows": 1190, "invalid_rows": 8},
            {"valid_rows": 1190, "invalid_rows": 8},
            ["checking schema", "done"],
        ),
        "publish": ({"published": 1190}, {"published": 1190}, ["uploading", "done"]),
    }
    stored: dict[str, dict] = {}
    for task, (output, summary, statuses) in results.items():
        _report(call, service, fe, task, "running")
        call(
            "POST",
            f"flow-executions/{fe}/task-status",
            service,
            {"statuses": [{"task_name": task, "status": s} for s in statuses]},
        )
        stored[task] = _report(call, service, fe, task, "completed", output=output)
        call(
            "POST",
            "task-outputs",
            service,
            {"flow_execution_id": fe, "task_name": task, "summary": summary, "tags": [task]},
        )
    # A person corrects extract's output: validate and publish go stale.
    extract = stored["extract"]
    call(
        "PUT",
        "task-executions",
        keys["user_key"],
        {
            "id": extract["id"],
            "flow_execution_id": fe,
            "task_name": "extract",
            "task_execution_idx": 0,
            "status": "completed",
            "output": {**extract["output"], "customers": 1200, "skipped": 4},
            "updated_at": extract["updated_at"],
        },
    )


def _globex(call, keys: dict[str, str], fe: str) -> None:  # noqa: ANN001
    service = keys["service_key"]
    _report(call, service, fe, "fetch", "running")
    _report(
        call,
        service,
        fe,
        "fetch",
        "failed",
        error={"type": "HTTPError", "message": "403 Forbidden from the CRM", "traceback": ""},
    )
