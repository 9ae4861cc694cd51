"""Row-level security: which organization's rows the database lets a transaction see.

DESIGN §3's second wall. The first wall is the application: every selector filters by the
caller's organization. On PostgreSQL with ``DATABASE_RLS`` on (the default when
``MIGRATION_DATABASE_URL`` is set), every tenant table also has a policy
(``flowplatform/migrations/0002_row_level_security.py``) that shows and accepts only rows
whose ``organization_id`` is the transaction's ``app.current_organization``, unless the
transaction set ``app.bypass_rls = 'on'``. The application connects as a role that is
neither superuser nor ``BYPASSRLS`` and owns no table (``manage.py setupdbrole``), so a
forgotten filter returns nothing instead of another organization's rows.

Both settings are set with ``set_config(..., true)``: transaction-local, so they end with the
transaction and can never leak to the next request on a reused (persistent or pooled)
connection. Hence every database statement that reads tenant rows must run inside a
transaction that set them first:

- API requests and browser pages: ``ATOMIC_REQUESTS`` gives each view a transaction, and
  DRF authentication (``flowplatform.authentication``) or the page's session principal
  calls ``set_organization`` in it.
- Code running outside a request transaction (WebSocket consumers, the claim long-poll's
  later attempts, the streamed task-output list): ``with activate(organization_id):``
  around each unit of work.
- Staff in the admin (``TenancyMiddleware``) and ``/metrics``: ``with bypass():``.
  Management commands that must see every organization (``sweepleases``, ``pruneevents``)
  call ``bypass_process()`` once (never in a server process).

The bypass setting is an explicit opt-out for trusted code paths, not a privilege: the
policies defend against a query that forgets its organization filter, not against SQL that
an attacker could run as the application role.

With RLS off (SQLite, or ``DATABASE_RLS=false``) every function here is a no-op, except that
``activate(..., atomic=True)`` still opens its transaction, and the application's PostgreSQL
connections start with ``app.bypass_rls = 'on'`` (settings), so the policies never hide rows.

Protecting a new tenant table: copy the ``ENABLE``/``FORCE``/``CREATE POLICY`` statements
of migration 0002 into a new migration of its app; ``flowplatform/tests/test_rls.py`` fails
for any table with an ``organization_id`` column that is neither protected nor exempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

ORGANIZATION_SETTING = "app.current_organization"
BYPASS_SETTING = "app.bypass_rls"
OWNER_ALIAS = "owner"

# Tables with an ``organization_id`` column that have no policy, and why: credentials are
# looked up to *find* the organization (an API key by its digest, a session user's
# membership), so a policy keyed on the organization cannot apply to that lookup. They hold
# no tenant data (keys are stored as SHA-256 digests) and no API endpoint lists them.
EXEMPT_TABLES = frozenset(
    {"flowplatform_apikey", "flowplatform_membership", "flowplatform_serviceaccount"}
)

_NEUTRAL = ("", "off")
_process_bypass = False


def enabled(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether RLS is enforced for connections of ``using``."""
    return settings.FLOWPLATFORM_RLS and (connections[using].vendor == "postgresql")


def set_organization(organization_id: Any, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Scope the rest of the current transaction to ``organization_id``.

    For code already inside the transaction it scopes (a request under ``ATOMIC_REQUESTS``).
    Outside a transaction it does nothing: the setting would end with its own statement, and
    callers without a request transaction (non-atomic views) use ``activate`` instead.
    """
    if not enabled(using):
        return
    connection = connections[using]
    if connection.in_atomic_block:
        _apply(connection, (str(organization_id), "off"))


@contextmanager
def activate(
    organization_id: Any, *, using: str = DEFAULT_DB_ALIAS, atomic: bool = False
) -> Iterator[None]:
    """Run the block in a transaction that sees only ``organization_id``'s rows.

    With RLS off the block runs as it is (in a transaction only when ``atomic``). Nested in
    an open transaction it runs in a savepoint and the outer setting comes back after it.
    """
    if not enabled(using):
        if atomic:
            with transaction.atomic(using=using):
                yield
        else:
            yield
        return
    with _scoped(using, (str(organization_id), "off")):
        yield


@contextmanager
def bypass(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the block in a transaction that sees every organization (staff, operators,
    cross-organization engine work). A no-op with RLS off."""
    if not enabled(using):
        yield
        return
    with _scoped(using, ("", "on")):
        yield


@contextmanager
def isolated(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Neither inherit nor leak the setting of an already open transaction: the block starts
    with no organization and the outer values are restored after it. Used for requests
    handled inside an open transaction (tests); without one there is nothing to isolate."""
    connection = connections[using]
    if not enabled(using) or not connection.in_atomic_block:
        yield
        return
    previous = _swap(connection, _NEUTRAL)
    try:
        yield
    finally:
        _restore(connection, previous)


def current(*, using: str = DEFAULT_DB_ALIAS) -> tuple[str, str]:
    """``(organization id or "", "on"|"off")`` as the database sees them now."""
    row = _run(
        connections[using],
        "SELECT current_setting(%s, true), current_setting(%s, true)",
        [ORGANIZATION_SETTING, BYPASS_SETTING],
    )
    return _values(row)


def bypass_process(on: bool = True) -> None:
    """Make every connection this process opens (and those open in this thread) see every
    organization, at session level. For management commands and the test suite's own setup
    code; never in a process that serves requests."""
    global _process_bypass
    _process_bypass = on
    connection_created.connect(_on_connection_created, dispatch_uid="flowplatform.tenancy")
    value = "on" if on else "off"
    for connection in connections.all(initialized_only=True):
        usable = connection.connection is not None and not connection.needs_rollback
        if usable and enabled(connection.alias):
            _set_session(connection, value)


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    # Any wrapper, including ones outside ``connections`` (Django's no-database cursor).
    if _process_bypass and settings.FLOWPLATFORM_RLS and connection.vendor == "postgresql":
        _set_session(connection, "on")


def _set_session(connection: BaseDatabaseWrapper, value: str) -> None:
    _run(connection, "SELECT set_config(%s, %s, false)", [BYPASS_SETTING, value])


@contextmanager
def _scoped(using: str, values: tuple[str, str], *, savepoint: bool = True) -> Iterator[None]:
    """A transaction with ``values`` set. Nested in an open one (tests, mostly), the outer
    values come back after the block; an error inside rolls them back with the savepoint."""
    connection = connections[using]
    if not connection.in_atomic_block:
        with transaction.atomic(using=using):
            _apply(connection, values)
            yield
        return
    with transaction.atomic(using=using, savepoint=savepoint):
        previous = _swap(connection, values)
        try:
            yield
        finally:
            _restore(connection, previous)


_SET = "set_config(%s, %s, true), set_config(%s, %s, true)"


def _apply(connection: BaseDatabaseWrapper, values: tuple[str, str]) -> None:
    """Set ``values`` for the current transaction: one statement, in Django's query log like
    any other (it is the per-request cost of RLS)."""
    organization, bypassing = values
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_SET}", [ORGANIZATION_SETTING, organization, BYPASS_SETTING, bypassing]
        )


# Saving and restoring an enclosing transaction's values only happens when tenancy code runs
# inside a transaction opened before it (the test suite's, around each test), and setting
# the process-wide bypass only in commands and tests. Neither is a cost of serving requests,
# so these statements run on the driver's connection, outside Django's query log (like
# Django's own SET TIME ZONE on connecting), and the suite's query budgets stay those of
# production.


def _swap(connection: BaseDatabaseWrapper, values: tuple[str, str]) -> tuple[str, str]:
    """Set ``values``; return the ones they replace (one statement)."""
    organization, bypassing = values
    row = _run(
        connection,
        "WITH previous AS MATERIALIZED"
        " (SELECT current_setting(%s, true) AS o, current_setting(%s, true) AS b)"
        f" SELECT o, b, {_SET} FROM previous",
        [ORGANIZATION_SETTING, BYPASS_SETTING]
        + [ORGANIZATION_SETTING, organization, BYPASS_SETTING, bypassing],
    )
    return _values(row)


def _restore(connection: BaseDatabaseWrapper, previous: tuple[str, str]) -> None:
    if connection.in_atomic_block and not connection.needs_rollback:
        organization, bypassing = previous
        _run(
            connection,
            f"SELECT {_SET}",
            [ORGANIZATION_SETTING, organization, BYPASS_SETTING, bypassing],
        )


def _values(row: Any) -> tuple[str, str]:
    organization, bypassing = row[0], row[1]
    return organization or "", "on" if bypassing == "on" else "off"


def _run(connection: BaseDatabaseWrapper, sql: str, params: list[str]) -> Any:
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


class TenancyMiddleware:
    """RLS around each request (a pass-through with RLS off). Put it after
    ``AuthenticationMiddleware``.

    - Staff on the admin: the whole request, template rendering included, runs in one
      transaction that bypasses RLS: staff see every organization (DESIGN §10).
    - Every other request starts with no organization; its view's transaction
      (``ATOMIC_REQUESTS``) is scoped by authentication.
    - A request handled inside an already open transaction (the test suite's) neither
      inherits nor leaks the outer setting.
    """

    sync_capable = True
    async_capable = True
    admin_prefix = "/admin/"

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        self._enabled = enabled()

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        if not self._enabled:
            return self.get_response(request)
        return self._handle(request, self.get_response)

    async def __acall__(self, request: Any) -> Any:
        if not self._enabled or not request.path.startswith(self.admin_prefix):
            return await self.get_response(request)
        # Admin views are synchronous: run this one, bypass included, on the request's
        # thread so the view's queries share the connection and transaction.
        inner = async_to_sync(self.get_response)
        return await sync_to_async(self._handle, thread_sensitive=True)(request, inner)

    def _handle(self, request: Any, get_response: Any) -> Any:
        if request.path.startswith(self.admin_prefix) and _is_staff(request):
            with _scoped(DEFAULT_DB_ALIAS, ("", "on"), savepoint=False):  # bypass()
                return get_response(request)
        with isolated():
            return get_response(request)


def _is_staff(request: Any) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def owner_configured() -> bool:
    """Whether a separate owning role is configured (``MIGRATION_DATABASE_URL``)."""
    return OWNER_ALIAS in settings.DATABASES


def migration_alias(alias: str) -> str:
    """The alias ``migrate`` should use for ``alias``: the owner's when it is configured for
    the same database (the application's role may not create or alter tables)."""
    if alias != DEFAULT_DB_ALIAS or not owner_configured():
        return alias
    return OWNER_ALIAS if same_database(DEFAULT_DB_ALIAS, OWNER_ALIAS) else alias


def same_database(alias: str, other: str) -> bool:
    keys = ("ENGINE", "HOST", "PORT", "NAME")
    first, second = connections[alias].settings_dict, connections[other].settings_dict
    return all(str(first.get(k) or "") == str(second.get(k) or "") for k in keys)
