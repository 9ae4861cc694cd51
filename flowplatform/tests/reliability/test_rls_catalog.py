"""Row 12 — the row-level security catalog, as the figure of this suite. The full check (the
policy text, the owner refusing ``NO FORCE``) is the RLS engineer's
``flowplatform/tests/test_rls.py::test_every_tenant_table_is_forced_under_a_policy_the_app_
role_cannot_escape``; this reuses its catalog query (``flowplatform.dbrole.tenant_tables``)."""

from __future__ import annotations

import pytest
from django.db import connection

from flowplatform.dbrole import tenant_tables
from flowplatform.tests.reliability.figures import figure
from flowplatform.tests.rls_harness import separate_owner

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not separate_owner(), reason="needs the app role (MIGRATION_DATABASE_URL)"),
]


@pytest.mark.django_db
def test_every_tenant_table_is_protected_and_the_app_role_cannot_escape() -> None:
    with connection.cursor() as cursor:
        rows = tenant_tables(cursor)
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        role, superuser, bypassrls = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = current_user"
        )
        owned = cursor.fetchone()[0]
    protected = [name for name, rls, force, policies in rows if rls and force and policies]
    figure(
        12,
        "RLS catalog",
        tenant_tables=len(rows),
        protected=len(protected),
        app_role=role,
        superuser=superuser,
        bypassrls=bypassrls,
        tables_owned=owned,
    )
    assert rows and len(protected) == len(rows)
    assert (superuser, bypassrls, owned) == (False, False, 0)
