"""The browser pages as plain Django views: login, organization scoping, the start form."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client

from executions.engine.outputs import report_task_output
from executions.models import FlowExecution, TaskExecution, TaskStatus
from executions.pages.presentation import display_status
from executions.representations import task_execution_data
from executions.services.flows import delete_flow
from executions.tests.factories import make_flow, make_flow_execution
from flowplatform.authentication import principal_for_key
from flowplatform.exceptions import ValidationFailed
from flowplatform.services import get_or_create_user
from realtime.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(tenant):  # noqa: ANN001, ANN201
    return make_flow(tenant.organization, display_name="Nightly import")


@pytest.fixture
def execution(flow):  # noqa: ANN001, ANN201
    return make_flow_execution(flow, input={"day": "monday"})


def boot_data(response) -> dict:  # noqa: ANN001
    match = re.search(
        r'<script id="execution-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the execution page embeds its state"
    return json.loads(match.group(1))


# -- login ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/flows/{flow}", "/executions/{execution}"],
)
def test_pages_redirect_anonymous_visitors_to_login(client: Client, flow, execution, path) -> None:  # noqa: ANN001
    url = path.format(flow=flow.id, execution=execution.id)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/login?next={url}"


def test_start_form_requires_login(client: Client, flow) -> None:  # noqa: ANN001
    response = client.post(f"/flows/{flow.id}/executions", {"input": "{}"})
    assert response.status_code == 302 and response["Location"].startswith("/login?next=")
    assert not FlowExecution.objects.filter(flow=flow).exists()


def test_status_history_answers_401_json_without_a_session(client: Client, execution) -> None:  # noqa: ANN001
    response = client.get(f"/pages-api/executions/{execution.id}/status-history")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_login_then_logout_with_the_session_form(tenant) -> None:  # noqa: ANN001
    tenant.user.set_password("s3cret-pass")
    tenant.user.save()
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login?next=/")
    assert page.status_code == 200
    assert b'<label for="id_username">Username</label>' in page.content
    token = client.cookies["csrftoken"].value

    wrong = client.post(
        "/login",
        {"username": tenant.user.username, "password": "nope", "csrfmiddlewaretoken": token},
    )
    assert wrong.status_code == 200 and b'role="alert"' in wrong.content

    response = client.post(
        "/login",
        {
            "username": tenant.user.username,
            "password": "s3cret-pass",
            "next": "/",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200

    token = client.cookies["csrftoken"].value
    out = client.post("/logout", {"csrfmiddlewaretoken": token})
    assert out.status_code == 302 and out["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_a_user_outside_every_organization_is_forbidden(db) -> None:  # noqa: ANN001
    client = Client()
    client.force_login(get_or_create_user(username="loner"))
    assert client.get("/").status_code == 403


# -- organization scoping ---------------------------------------------------------------------


def test_flow_list_shows_only_the_organizations_flows(page_client, tenant, outsider) -> None:  # noqa: ANN001
    mine = make_flow(tenant.organization, display_name="Mine to see")
    theirs = make_flow(outsider.organization, display_name="Not for your eyes")
    response = page_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Mine to see" in html and f"/flows/{mine.id}" in html
    assert "Not for your eyes" not in html and str(theirs.id) not in html


def test_another_organizations_ids_answer_404(outsider_page_client, flow, execution) -> None:  # noqa: ANN001
    assert outsider_page_client.get(f"/flows/{flow.id}").status_code == 404
    assert outsider_page_client.get(f"/executions/{execution.id}").status_code == 404
    history = outsider_page_client.get(f"/pages-api/executions/{execution.id}/status-history")
    assert history.status_code == 404 and history.json()["error"]["code"] == "not_found"
    started = outsider_page_client.post(f"/flows/{flow.id}/executions", {"input": "{}"})
    assert started.status_code == 404
    assert FlowExecution.objects.filter(flow=flow).count() == 1


def test_unknown_and_deleted_flows_answer_404(page_client, tenant, flow) -> None:  # noqa: ANN001
    assert page_client.get(f"/flows/{uuid.uuid4()}").status_code == 404
    assert page_client.get(f"/executions/{uuid.uuid4()}").status_code == 404
    delete_flow(organization=tenant.organization, flow_id=flow.id, actor="test")
    assert page_client.get(f"/flows/{flow.id}").status_code == 404
    assert "Nightly import" not in page_client.get("/").content.decode()


# -- the flow page ----------------------------------------------------------------------------


def test_flow_page_draws_the_dag_and_lists_executions(page_client, flow, execution) -> None:  # noqa: ANN001
    response = page_client.get(f"/flows/{flow.id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="dag-slot"') == 4  # a → (b, c) → d
    assert html.count('class="edge"') == 4
    assert f'href="/executions/{execution.id}"' in html
    assert '<label for="id_input">Input (JSON)</label>' in html


def test_start_form_starts_an_execution_and_redirects_to_it(page_client, flow) -> None:  # noqa: ANN001
    response = page_client.post(
        f"/flows/{flow.id}/executions", {"input": '{"rows": [1, 2], "note": "hi"}'}
    )
    execution = FlowExecution.objects.get(flow=flow)
    assert response.status_code == 302
    assert response["Location"] == f"/executions/{execution.id}"
    assert execution.input == {"rows": [1, 2], "note": "hi"}
    assert execution.modified_by == str(flow.organization.memberships.get().user_id)


def test_start_form_shows_invalid_json_inline_and_starts_nothing(page_client, flow) -> None:  # noqa: ANN001
    response = page_client.post(f"/flows/{flow.id}/executions", {"input": '{"rows": [1, 2'})
    assert response.status_code == 422
    html = response.content.decode()
    assert 'role="alert"' in html and "Not valid JSON" in html
    assert 'aria-invalid="true"' in html
    assert "{&quot;rows&quot;: [1, 2</textarea>" in html  # what was typed is kept
    assert not FlowExecution.objects.filter(flow=flow).exists()


@pytest.mark.parametrize("text", ["NaN", '{"x": Infinity}', "[1,]", "{'single': 'quotes'}"])
def test_start_form_accepts_only_strict_json(page_client, flow, text) -> None:  # noqa: ANN001
    response = page_client.post(f"/flows/{flow.id}/executions", {"input": text})
    assert response.status_code == 422
    assert "Not valid JSON" in response.content.decode()
    assert not FlowExecution.objects.filter(flow=flow).exists()


def test_start_form_shows_the_services_validation_errors(page_client, flow, monkeypatch) -> None:  # noqa: ANN001
    from executions.pages import views

    def refuse(**kwargs):  # noqa: ANN003, ANN202
        raise ValidationFailed(
            "input: too large",
            details=[{"loc": ["body", "input", "rows"], "msg": "at most 10 rows", "type": "max"}],
        )

    monkeypatch.setattr(views, "create_flow_execution", refuse)
    response = page_client.post(f"/flows/{flow.id}/executions", {"input": '{"rows": []}'})
    assert response.status_code == 422
    html = response.content.decode()
    assert "input: too large" in html and "input.rows: at most 10 rows" in html


def test_start_form_checks_csrf(tenant, flow) -> None:  # noqa: ANN001
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant.user)
    assert client.post(f"/flows/{flow.id}/executions", {"input": "{}"}).status_code == 403
    client.get(f"/flows/{flow.id}")
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/flows/{flow.id}/executions", {"input": "null", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert FlowExecution.objects.get(flow=flow).input is None


# -- the execution page -----------------------------------------------------------------------


def test_execution_page_embeds_state_and_nodes_are_buttons(page_client, tenant, execution) -> None:  # noqa: ANN001
    principal = principal_for_key(tenant.service_api_key)
    report_task_output(
        principal=principal,
        data={"flow_execution_id": execution.id, "task_name": "a", "summary": {"rows": 3}},
    )
    response = page_client.get(f"/executions/{execution.id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<button type="button" class="node" data-task=') == 4
    # Drawn server-side too: right before the script runs, readable without it.
    assert 'data-task="a" data-status="queued"' in html
    assert 'data-task="d" data-status="pending"' in html
    assert 'id="connection"' in html and 'role="status"' in html
    boot = boot_data(response)
    assert boot["flow_execution"]["id"] == str(execution.id)
    # The engine queued the root task; the page starts from exactly what the API shows.
    root = TaskExecution.objects.get(flow_execution=execution, task_name="a")
    assert boot["tasks"] == {"a": task_execution_data(root)}
    assert boot["outputs"]["a"]["summary"] == {"rows": 3}
    assert boot["task_names"] == ["a", "b", "c", "d"]
    assert boot["downstream"]["a"] == ["b", "c", "d"] and boot["downstream"]["d"] == []
    assert boot["urls"]["websocket"] == f"/ws/flows/{execution.flow_id}"
    assert boot["urls"]["task_executions"] == "/api/task-executions"
    assert boot["last_event_id"] == Event.objects.filter(flow_id=execution.flow_id).latest("id").id


def test_execution_page_shows_the_latest_attempt_of_each_task(page_client, execution) -> None:  # noqa: ANN001
    for idx in (0, 1, 2):
        TaskExecution.objects.get_or_create(
            organization_id=execution.organization_id,
            flow_execution=execution,
            task_name="b",
            task_execution_idx=idx,
        )
    boot = boot_data(page_client.get(f"/executions/{execution.id}"))
    assert boot["tasks"]["b"]["task_execution_idx"] == 2


def test_status_history_lists_rows_in_arrival_order(page_client, execution) -> None:  # noqa: ANN001
    for seq, (task, status) in enumerate(
        [("a", "started"), ("b", "started"), ("a", "50%"), ("a", None)], start=1
    ):
        TaskStatus.objects.create(
            organization_id=execution.organization_id,
            flow_execution=execution,
            task_name=task,
            status=status,
            seq=seq,
        )
    url = f"/pages-api/executions/{execution.id}/status-history"
    rows = page_client.get(url, {"task_name": "a"}).json()
    assert [row["status"] for row in rows] == ["started", "50%", None]
    assert {row["task_name"] for row in rows} == {"a"}
    assert len(page_client.get(url).json()) == 4


@pytest.mark.parametrize(
    ("status", "stale_status", "shown"),
    [
        ("completed", "consistent", "completed"),
        ("completed", "stale", "stale"),
        ("failed", "stale", "stale"),
        ("stale", "stale", "stale"),
        ("queued", "stale", "queued"),  # a re-run already on its way
        ("awaiting_input", "consistent", "awaiting_input"),
    ],
)
def test_nodes_show_finished_runs_made_outdated_as_stale(status, stale_status, shown) -> None:  # noqa: ANN001
    assert display_status({"status": status, "stale_status": stale_status}) == shown
    assert display_status(None) == "pending"
