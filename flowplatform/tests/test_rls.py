"""Row-level security, the second wall between organizations (DESIGN §3).

Runs on PostgreSQL as the application's role (``DATABASE_URL``) with the test database
owned and migrated by ``MIGRATION_DATABASE_URL``'s role (``rls_harness``). The code under
test in ``strict()`` blocks, the test's own included, gets no bypass: only what
``flowplatform.tenancy`` sets decides which rows the database shows.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import ProgrammingError, connection, connections, transaction
from django.test import Client, RequestFactory

from executions.models import Flow, FlowExecution, FlowVersion, TaskExecution, TaskStatus
from executions.tests.e2e.conftest import e2e_server  # noqa: F401 - fixture
from executions.tests.factories import make_flow as make_diamond_flow
from executions.tests.factories import make_flow_execution
from flowplatform import tenancy
from flowplatform.dbrole import RoleSetupError, setup_app_role, tenant_tables
from flowplatform.models import Organization
from flowplatform.services import get_or_create_user
from flowplatform.tests.rls_harness import separate_owner, strict
from outputs.models import TaskOutput
from realtime.consumers import CLOSE_NOT_FOUND
from realtime.models import Event
from realtime.tests.factories import apublish, make_execution, make_flow, spec
from realtime.tests.ws import communicator, expect_close, flow_path, subscribe

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not separate_owner(),
        reason="needs DATABASE_RLS with a separate owning role (MIGRATION_DATABASE_URL)",
    ),
]

TENANT_MODELS = [Flow, FlowVersion, FlowExecution, TaskExecution, TaskStatus, TaskOutput, Event]
TENANT_TABLES = [model._meta.db_table for model in TENANT_MODELS]
PROBE_URLS = "flowplatform.tests.rls_urls"


def populate(organization: Organization, name: str) -> FlowExecution:
    """One row of the organization in every tenant table."""
    flow = make_flow(organization, name=name)  # a flow and its version
    execution = make_execution(flow)
    TaskExecution.objects.create(
        organization=organization, flow_execution=execution, task_name="a", task_execution_idx=0
    )
    TaskStatus.objects.create(
        organization=organization, flow_execution=execution, task_name="a", status="s", seq=1
    )
    TaskOutput.objects.create(
        organization=organization, flow_execution=execution, task_name="a", summary={"n": 1}
    )
    Event.objects.create(
        type="task_output.created",
        organization=organization,
        flow_id=flow.id,
        flow_execution_id=execution.id,
        task_name="a",
    )
    return execution


def raw_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in TENANT_TABLES:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def refused(statement: Any) -> bool:
    """Whether the database refuses ``statement()`` (in a savepoint, so the test goes on)."""
    try:
        with transaction.atomic():
            statement()
    except ProgrammingError as exc:
        assert "row-level security" in str(exc), exc
        return True
    return False


# -- the catalog ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_tenant_table_is_forced_under_a_policy_the_app_role_cannot_escape() -> None:
    expected = {
        model._meta.db_table
        for model in apps.get_models()
        if any(field.column == "organization_id" for field in model._meta.concrete_fields)
    } - tenancy.EXEMPT_TABLES
    with connection.cursor() as cursor:
        rows = tenant_tables(cursor)
        cursor.execute(
            "SELECT tablename, qual, with_check FROM pg_policies WHERE schemaname = 'public'"
        )
        policies = {name: (qual, check) for name, qual, check in cursor.fetchall()}
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        superuser, bypassrls = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = current_user AND c.relkind IN ('r', 'p', 'S', 'v', 'm')"
        )
        owned = cursor.fetchone()[0]
    protected = [name for name, rls, force, count in rows if rls and force and count]
    print(f"tenant tables {len(rows)}, protected {len(protected)}")

    assert {name for name, *_ in rows} == expected == set(TENANT_TABLES)
    assert sorted(protected) == sorted(expected)
    for table in expected:
        qual, check = policies[table]
        assert "app.current_organization" in qual and "app.current_organization" in check
    assert (superuser, bypassrls, owned) == (False, False, 0)
    # Not the owner, so it cannot switch the wall off either.
    with pytest.raises(ProgrammingError, match="must be owner"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE executions_flow NO FORCE ROW LEVEL SECURITY")


# -- no organization, organization A -----------------------------------------------------------


@pytest.mark.django_db
def test_without_an_organization_no_row_is_visible_or_writable(tenant, outsider) -> None:
    populate(tenant.organization, "ours")
    populate(outsider.organization, "theirs")
    assert raw_counts() == dict.fromkeys(TENANT_TABLES, 2)  # the suite's own code sees all

    with strict():
        assert tenancy.current() == ("", "off")
        assert raw_counts() == dict.fromkeys(TENANT_TABLES, 0)
        assert [model.objects.count() for model in TENANT_MODELS] == [0] * len(TENANT_MODELS)

        def insert_raw() -> None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO realtime_event (type, organization_id, created_at)"
                    " VALUES ('x', %s, now())",
                    [outsider.organization.id],
                )

        assert refused(insert_raw)
        assert refused(lambda: Flow.objects.create(organization=tenant.organization, definition={}))


@pytest.mark.django_db
def test_an_organization_sees_only_its_rows_even_through_unscoped_querysets(
    tenant, outsider
) -> None:
    ours = populate(tenant.organization, "ours")
    populate(outsider.organization, "theirs")

    with strict():
        with tenancy.activate(tenant.organization.id):
            for model in TENANT_MODELS:
                rows = list(model.objects.all())  # deliberately unscoped
                assert [row.organization_id for row in rows] == [tenant.organization.id], model
            assert raw_counts() == dict.fromkeys(TENANT_TABLES, 1)
            # Another organization's rows can be neither written nor reached.
            assert refused(
                lambda: Event.objects.create(type="x", organization=outsider.organization)
            )
            assert refused(
                lambda: Flow.objects.filter(id=ours.flow_id).update(
                    organization=outsider.organization
                )
            )
            assert TaskOutput.objects.filter(organization=outsider.organization).delete()[0] == 0
            assert Flow.objects.exclude(id=ours.flow_id).update(display_name="mine now") == 0
        # Nested in the test's transaction: the block's setting ended with it.
        assert tenancy.current() == ("", "off")
        assert raw_counts() == dict.fromkeys(TENANT_TABLES, 0)
    assert raw_counts() == dict.fromkeys(TENANT_TABLES, 2)
    assert Flow.objects.get(display_name="theirs").organization == outsider.organization


# -- requests on reused connections ---------------------------------------------------------


@pytest.mark.urls(PROBE_URLS)
@pytest.mark.django_db(transaction=True)
def test_the_organization_never_outlives_its_request_on_a_persistent_connection(
    tenant, outsider
) -> None:
    make_flow(tenant.organization, name="a1")
    make_flow(tenant.organization, name="a2")
    make_flow(outsider.organization, name="b1")
    anonymous = Client()
    assert connection.settings_dict["CONN_MAX_AGE"] > 0

    with strict():
        seen = [
            tenant.client().get("/rls-probe/api").json(),
            anonymous.get("/rls-probe/plain").json(),
            outsider.client("service").get("/rls-probe/api").json(),
            anonymous.get("/rls-probe/plain").json(),
        ]
        assert tenancy.current() == ("", "off")

    assert len({answer.pop("pid") for answer in seen}) == 1  # one connection served them all
    assert seen == [
        {"organization": str(tenant.organization.id), "bypass": False, "flows": 2},
        {"organization": "", "bypass": False, "flows": 0},
        {"organization": str(outsider.organization.id), "bypass": False, "flows": 1},
        {"organization": "", "bypass": False, "flows": 0},
    ]


def _wsgi_get(path: str, **headers: str) -> dict[str, Any]:
    """A request through the production WSGI handler: connections are released to the pool
    at its end by Django's own request signals, as in a server."""
    environ = RequestFactory().get(path, **headers).environ
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    response = WSGIHandler()(environ, start_response)
    try:
        body = b"".join(response)
    finally:
        response.close()
    assert statuses == ["200 OK"], body
    return json.loads(body)


@pytest.mark.urls(PROBE_URLS)
@pytest.mark.django_db(transaction=True)
def test_the_organization_never_outlives_its_request_on_a_pooled_connection(
    tenant, outsider
) -> None:
    make_flow(tenant.organization, name="a1")
    make_flow(outsider.organization, name="b1")
    db = connection.settings_dict
    saved = db["CONN_MAX_AGE"], dict(db["OPTIONS"])
    connection.close()
    db["CONN_MAX_AGE"] = 0
    db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1}
    try:
        with strict():
            seen = [
                _wsgi_get("/rls-probe/api", HTTP_AUTHORIZATION=f"Bearer {tenant.user_key}"),
                _wsgi_get("/rls-probe/plain"),
                _wsgi_get("/rls-probe/api", HTTP_X_API_KEY=outsider.service_key),
                _wsgi_get("/rls-probe/plain"),
            ]
    finally:
        connection.close()
        connection.close_pool()
        db["CONN_MAX_AGE"], db["OPTIONS"] = saved

    assert len({answer.pop("pid") for answer in seen}) == 1  # the pool's one connection
    assert seen == [
        {"organization": str(tenant.organization.id), "bypass": False, "flows": 1},
        {"organization": "", "bypass": False, "flows": 0},
        {"organization": str(outsider.organization.id), "bypass": False, "flows": 1},
        {"organization": "", "bypass": False, "flows": 0},
    ]


# -- staff, pages, workers, streams, WebSockets --------------------------------------------


@pytest.mark.django_db
def test_staff_in_the_admin_see_every_organization_members_only_theirs(tenant, outsider) -> None:
    make_flow(tenant.organization, name="acme-pipeline")
    make_flow(outsider.organization, name="globex-pipeline")
    staff = get_or_create_user(username="staff", is_staff=True)

    with strict():
        admin = Client()
        admin.force_login(staff)
        admin_page = admin.get("/admin/executions/flow/")
        member = Client()
        member.force_login(tenant.user)
        member_page = member.get("/")
        member_in_admin = member.get("/admin/executions/flow/")

    assert admin_page.status_code == 200
    assert "acme-pipeline" in admin_page.text and "globex-pipeline" in admin_page.text
    assert member_page.status_code == 200
    assert "acme-pipeline" in member_page.text and "globex-pipeline" not in member_page.text
    assert member_in_admin.status_code == 302  # not staff: the admin's login page, no bypass


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_staff_see_every_organization_in_the_admin_served_over_asgi(
    e2e_server,  # noqa: F811
    tenant,
    outsider,
) -> None:
    make_flow(tenant.organization, name="acme-pipeline")
    make_flow(outsider.organization, name="globex-pipeline")
    staff = Client()
    staff.force_login(get_or_create_user(username="staff", is_staff=True))
    session = {"sessionid": staff.cookies["sessionid"].value}
    server = e2e_server()  # uvicorn, as the application's role, RLS on

    with httpx.Client(base_url=server.url, cookies=session, timeout=30) as browser:
        page = browser.get("/admin/executions/flow/")
        api = browser.get("/api/flows", headers={"Authorization": f"Bearer {tenant.user_key}"})

    assert page.status_code == 200, server.output()
    assert "acme-pipeline" in page.text and "globex-pipeline" in page.text
    assert [flow["display_name"] for flow in api.json()] == ["acme-pipeline"]


@pytest.mark.django_db
def test_claims_and_streamed_lists_scope_their_own_transactions(tenant, outsider) -> None:
    make_flow_execution(make_diamond_flow(tenant.organization))
    make_flow_execution(make_diamond_flow(outsider.organization))
    claim = {"worker_id": "w1", "executors": ["noop"], "limit": 10, "wait_seconds": 0}

    with strict():
        claimed = tenant.client("service").post("/api/task-executions/claim", claim)
        listed = tenant.client().get("/api/task-outputs")
        outputs = json.loads(b"".join(listed.streaming_content))

    assert claimed.status_code == 200, claimed.content
    tasks = claimed.json()["task_executions"]
    assert [(t["task_name"], t["organization_id"]) for t in tasks] == [
        ("a", str(tenant.organization.id))
    ]
    assert outputs and {o["organization_id"] for o in outputs} == {str(tenant.organization.id)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_websocket_reads_are_scoped_to_the_subscriber_s_organization(
    tenant, outsider
) -> None:
    flow = await sync_to_async(make_flow)(tenant.organization, name="ours")
    execution = await sync_to_async(make_execution)(flow)
    theirs = await sync_to_async(make_flow)(outsider.organization, name="theirs")
    their_execution = await sync_to_async(make_execution)(theirs)
    ours = await apublish([spec(execution, "task_output.created") for _ in range(3)])
    await apublish([spec(their_execution, "task_output.created")])

    # The consumers' database calls run on this worker thread; strict from here on.
    await sync_to_async(tenancy.bypass_process)(False)
    try:
        comm, first = await subscribe(flow_path(flow.id, tenant.user_key))
        assert first["last_event_id"] == ours[-1].id
        await comm.send_json_to({"action": "replay", "since": 0})
        frames = [await comm.receive_json_from(timeout=5) for _ in range(len(ours) + 1)]
        await comm.disconnect()
        assert [f["id"] for f in frames[:-1]] == [event.id for event in ours]
        assert frames[-1] == {"type": "replayed", "last_event_id": ours[-1].id}

        foreign = communicator(flow_path(theirs.id, tenant.user_key))
        assert (await foreign.connect(timeout=5))[0]
        await expect_close(foreign, CLOSE_NOT_FOUND)
        await foreign.disconnect()
    finally:
        await sync_to_async(tenancy.bypass_process)(True)
        await sync_to_async(connections.close_all)()


# -- setup and migration --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_setupdbrole_is_idempotent_and_the_migration_reverses() -> None:
    outputs = []
    for _ in range(2):
        out = StringIO()
        call_command("setupdbrole", stdout=out)
        outputs.append(out.getvalue())
    role = connection.settings_dict["USER"]
    assert outputs[0] == outputs[1]
    assert f"role {role}: exists, not superuser, not BYPASSRLS" in outputs[1]
    assert f"ownership: {role} owns no table" in outputs[1]
    assert "row-level security: 7 of 7 tenant table(s) protected" in outputs[1]
    with connections["owner"].cursor() as cursor, pytest.raises(RoleSetupError):
        cursor.execute("SELECT current_user")
        setup_app_role(cursor, role=cursor.fetchone()[0], password=None, database="x")

    def protected() -> list[bool]:
        with connection.cursor() as cursor:
            return [rls and force and bool(n) for _, rls, force, n in tenant_tables(cursor)]

    call_command("migrate", "flowplatform", "0001", verbosity=0)  # runs as the owner
    try:
        assert protected() == [False] * 7
    finally:
        call_command("migrate", "flowplatform", verbosity=0)
    assert protected() == [True] * 7
