"""The PostgreSQL role the application connects as, set up by the role that owns the tables.

Row-level security (``flowplatform.tenancy``) only binds a role that is neither superuser nor
``BYPASSRLS`` and owns no table. ``setup_app_role`` creates that role when missing (name and
password from ``DATABASE_URL``), grants it the data privileges it needs on the database and
nothing more (no DDL, no ``TRUNCATE``), and makes tables the owner creates later granted
too. Idempotent; returns one line per thing it checked or did.
"""

from __future__ import annotations

from typing import Any

from flowplatform.tenancy import EXEMPT_TABLES

ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"


class RoleSetupError(Exception):
    pass


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def setup_app_role(
    cursor: Any, *, role: str, password: str | None, database: str, truncate: bool = False
) -> list[str]:
    """Run as the owner, connected to ``database``. ``truncate`` also grants ``TRUNCATE``
    (only the test suite's database: pytest-django empties tables with it between tests)."""
    cursor.execute("SELECT current_user, current_schema()")
    owner, schema = cursor.fetchone()
    if role == owner:
        raise RoleSetupError(
            f"DATABASE_URL and MIGRATION_DATABASE_URL both use role {role!r}: the application "
            "needs its own role, one that owns no table."
        )
    lines = [_ensure_role(cursor, role=role, password=password)]
    lines += _grant(cursor, role=role, database=database, schema=schema, truncate=truncate)
    lines.append(_reclaim_tables(cursor, role=role, schema=schema))
    lines.append(_protection(cursor, schema=schema))
    return lines


def _ensure_role(cursor: Any, *, role: str, password: str | None) -> str:
    cursor.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [role]
    )
    row = cursor.fetchone()
    secret = " PASSWORD %s" if password else ""
    params = [password] if password else None
    if row is None:
        cursor.execute(f"CREATE ROLE {quote(role)} {ROLE_ATTRIBUTES}{secret}", params)
        return f"role {role}: created ({ROLE_ATTRIBUTES})"
    superuser, bypassrls, _ = row
    if superuser or bypassrls:
        raise RoleSetupError(
            f"Role {role!r} is a superuser or has BYPASSRLS, so row-level security would not "
            "apply to it. Point DATABASE_URL at a dedicated role (it is created if missing)."
        )
    cursor.execute(f"ALTER ROLE {quote(role)} LOGIN{secret}", params)
    return f"role {role}: exists, not superuser, not BYPASSRLS" + (
        "; password set from DATABASE_URL" if password else ""
    )


def _grant(cursor: Any, *, role: str, database: str, schema: str, truncate: bool) -> list[str]:
    who = quote(role)
    tables = TABLE_PRIVILEGES + (", TRUNCATE" if truncate else "")
    statements = [
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {who}",
        f"GRANT USAGE ON SCHEMA {quote(schema)} TO {who}",
        f"GRANT {tables} ON ALL TABLES IN SCHEMA {quote(schema)} TO {who}",
        f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {quote(schema)} TO {who}",
        # Tables and sequences the owner creates later (new migrations) are granted too.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quote(schema)} GRANT {tables} ON TABLES TO {who}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quote(schema)}"
        f" GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {who}",
    ]
    for statement in statements:
        cursor.execute(statement)
    cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [schema])
    (count,) = cursor.fetchone()
    return [
        f"database {database}: CONNECT; schema {schema}: USAGE",
        f"{count} table(s): {tables}; sequences: {SEQUENCE_PRIVILEGES}",
        "tables and sequences created later by this owner: granted the same (default privileges)",
    ]


def _reclaim_tables(cursor: Any, *, role: str, schema: str) -> str:
    """Tables the application's role owns (e.g. migrated as it before) go to the owner:
    RLS is forced on owners too, but an owner could switch it off."""
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tableowner = %s",
        [schema, role],
    )
    owned = [name for (name,) in cursor.fetchall()]
    for name in owned:
        cursor.execute(f"ALTER TABLE {quote(schema)}.{quote(name)} OWNER TO CURRENT_USER")
    if owned:
        return f"ownership: {len(owned)} table(s) owned by {role} reassigned to the owner"
    return f"ownership: {role} owns no table"


def _protection(cursor: Any, *, schema: str) -> str:
    tenant, protected = protection_counts(cursor, schema=schema)
    hint = "" if tenant else " (run migrate)"
    return f"row-level security: {protected} of {tenant} tenant table(s) protected{hint}"


def tenant_tables(cursor: Any, *, schema: str = "public") -> list[tuple[str, bool, bool, int]]:
    """Every table with an ``organization_id`` column except the exempt credential tables:
    ``(name, relrowsecurity, relforcerowsecurity, number of policies)``."""
    cursor.execute(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id'
             AND NOT a.attisdropped
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
        """,
        [schema],
    )
    return [row for row in cursor.fetchall() if row[0] not in EXEMPT_TABLES]


def protection_counts(cursor: Any, *, schema: str = "public") -> tuple[int, int]:
    rows = tenant_tables(cursor, schema=schema)
    return len(rows), sum(1 for _, rls, force, policies in rows if rls and force and policies)
