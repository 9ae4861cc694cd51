"""Row-level security on every tenant table (PostgreSQL only; a no-op elsewhere).

Each table shows and accepts only the rows of the organization the transaction set in
``app.current_organization``, unless it set ``app.bypass_rls = 'on'`` (staff, operators,
migrations). ``FORCE`` makes the policy apply to the table's owner too; only superusers and
``BYPASSRLS`` roles skip it, and the application connects as neither (``setupdbrole``).

The credential tables (``flowplatform_apikey``, ``flowplatform_membership``,
``flowplatform_serviceaccount``) are deliberately left out: authentication reads them to
find the organization, before one can be set (see ``flowplatform.tenancy.EXEMPT_TABLES``).
"""

from django.db import migrations

TENANT_TABLES = (
    "executions_flow",
    "executions_flowversion",
    "executions_flowexecution",
    "executions_taskexecution",
    "executions_taskstatus",
    "outputs_taskoutput",
    "realtime_event",
)
POLICY = "tenant_isolation"
CONDITION = (
    "current_setting('app.bypass_rls', true) = 'on'"
    " OR organization_id = NULLIF(current_setting('app.current_organization', true), '')::uuid"
)


def enable(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TENANT_TABLES:
        name = schema_editor.quote_name(table)
        schema_editor.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {name}")
        schema_editor.execute(
            f"CREATE POLICY {POLICY} ON {name} USING ({CONDITION}) WITH CHECK ({CONDITION})"
        )


def disable(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TENANT_TABLES:
        name = schema_editor.quote_name(table)
        schema_editor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {name}")
        schema_editor.execute(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [
        ("flowplatform", "0001_initial_tenancy"),
        ("executions", "0002_flowexecution_pending_tasks"),
        ("outputs", "0001_initial_task_outputs"),
        ("realtime", "0001_initial_event_outbox"),
    ]

    operations = [migrations.RunPython(enable, disable, elidable=False)]
