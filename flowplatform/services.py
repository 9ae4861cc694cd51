"""Organizations and API keys: creation, revocation and lookup."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Field, Model
from django.utils import timezone

from flowplatform import keycache
from flowplatform.exceptions import BadRequest
from flowplatform.models import ApiKey, Membership, Organization, ServiceAccount

KEY_PREFIX = "fpk_"
# last_used_at is refreshed at most this often per key, so authentication is read-only on
# the hot path.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_key(raw_key: str) -> str:
    """Keys carry 240 bits of entropy, so one SHA-256 round is enough (no salt needed)."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def create_organization(*, name: str, max_concurrent_executions: int | None = None) -> Organization:
    kwargs = {"name": name}
    if max_concurrent_executions is not None:
        kwargs["max_concurrent_executions"] = max_concurrent_executions
    return Organization.objects.create(**kwargs)


def get_organization(*, id_or_name: str) -> Organization:
    qs = Organization.objects.all()
    try:
        return qs.get(id=id_or_name)
    except (Organization.DoesNotExist, ValueError, Exception):  # noqa: BLE001 - bad uuid text
        pass
    try:
        return qs.get(name=id_or_name)
    except Organization.DoesNotExist:
        raise BadRequest(f"No organization with id or name {id_or_name!r}.") from None


@transaction.atomic
def add_member(
    *, organization: Organization, user, role: str = Membership.Role.MEMBER
) -> Membership:
    membership, _ = Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def create_api_key(
    *,
    organization: Organization,
    kind: str,
    user=None,
    service_account: ServiceAccount | None = None,
    name: str = "",
    read_only: bool = False,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored nor shown again.

    A user key makes its user a member of the organization; a service key without a service
    account gets the organization's default ``workers`` account.
    """
    if kind == ApiKey.Kind.USER:
        if user is None:
            raise BadRequest("A user key needs a user.")
        add_member(organization=organization, user=user)
        service_account = None
    elif kind == ApiKey.Kind.SERVICE:
        user = None
        if service_account is None:
            service_account, _ = ServiceAccount.objects.get_or_create(
                organization=organization, name="workers"
            )
    else:
        raise BadRequest(f"Unknown key kind {kind!r}; use 'user' or 'service'.")
    raw = KEY_PREFIX + secrets.token_urlsafe(30)
    key = ApiKey.objects.create(
        organization=organization,
        kind=kind,
        user=user,
        service_account=service_account,
        name=name,
        prefix=raw[:12],
        hashed_key=hash_key(raw),
        read_only=read_only,
    )
    return key, raw


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    """Revoke the key: at once in this process, within ``API_KEY_CACHE_SECONDS`` in the
    other server processes (``keycache``)."""
    ApiKey.objects.filter(id=api_key.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    keycache.forget(api_key.hashed_key)
    return api_key


def find_active_api_key(*, raw_key: str) -> ApiKey | None:
    """The live key matching ``raw_key`` with its organization, user and service account
    loaded, or None. One query, unless this process found the key lately (``keycache``)."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 128:
        return None
    digest = hash_key(raw_key)
    key = keycache.get(digest)
    if key is not None:
        return key
    key = _fetch_key(digest)
    if key is None or (key.user is not None and not key.user.is_active):
        return None
    keycache.put(digest, key)
    return key


# Every API request runs this lookup. Written once as SQL (the same query as
# ``ApiKey.objects.select_related("organization", "user", "service_account")``): building
# the ORM query cost several times more CPU than running it (bench/README.md, "Hot paths").
@functools.cache
def _key_lookup() -> tuple[str, list[tuple[type[Model], list[Field], list[tuple[Any, list]]]]]:
    user_model = get_user_model()
    parts = [
        (ApiKey, "k", ""),
        (Organization, "o", 'JOIN {table} o ON o."{pk}" = k."organization_id"'),
        (user_model, "u", 'LEFT JOIN {table} u ON u."{pk}" = k."user_id"'),
        (ServiceAccount, "s", 'LEFT JOIN {table} s ON s."{pk}" = k."service_account_id"'),
    ]
    columns: list[str] = []
    joins: list[str] = []
    layout: list[tuple[type[Model], list[Field], list[tuple[Any, list]]]] = []
    for model, alias, join in parts:
        fields = list(model._meta.concrete_fields)
        columns += [f'{alias}."{field.column}"' for field in fields]
        layout.append((model, fields, [_converters(field) for field in fields]))
        if join:
            joins.append(join.format(table=f'"{model._meta.db_table}"', pk=model._meta.pk.column))
    sql = (
        f'SELECT {", ".join(columns)} FROM "{ApiKey._meta.db_table}" k {" ".join(joins)}'
        ' WHERE k."hashed_key" = %s AND k."revoked_at" IS NULL LIMIT 1'
    )
    return sql, layout


def _fetch_key(digest: str) -> ApiKey | None:
    sql, layout = _key_lookup()
    with connection.cursor() as cursor:
        cursor.execute(sql, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    instances: list[Model | None] = []
    start = 0
    for model, fields, converters in layout:
        values = list(row[start : start + len(fields)])
        start += len(fields)
        if values[0] is None and model is not ApiKey:  # a LEFT JOIN that matched nothing
            instances.append(None)
            continue
        for index, (column, functions) in enumerate(converters):
            if values[index] is not None:
                for convert in functions:
                    values[index] = convert(values[index], column, connection)
        instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
    key, organization, user, service_account = instances
    key.organization = organization
    key.user = user
    key.service_account = service_account
    return key  # type: ignore[return-value]


def _converters(field: Field) -> tuple[Any, list[Any]]:
    """What the ORM applies to a raw column value of ``field``: the backend's converters first
    (SQLite returns datetimes as text, made aware here), then the field's ``from_db_value``.
    Looked up once per process (``_key_lookup``), not per request. ``get_col``, not
    ``cached_col``: a foreign key's column converts as its target (a UUID on SQLite)."""
    column = field.get_col(field.model._meta.db_table)
    return column, connection.ops.get_db_converters(column) + field.get_db_converters(connection)


def known_api_key(*, raw_key: str) -> ApiKey | None:
    """The live key matching ``raw_key`` if authenticating it now needs no query: this
    process found it lately (``keycache``) and recorded its use lately (``touch_api_key``).
    None otherwise, which says nothing about the key: ``find_active_api_key`` decides."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 128:
        return None
    key = keycache.get(hash_key(raw_key))
    if key is None or not key.last_used_at:
        return None
    if timezone.now() - key.last_used_at >= LAST_USED_RESOLUTION:
        return None
    return key


def touch_api_key(*, api_key: ApiKey) -> None:
    """Record use, at most once per ``LAST_USED_RESOLUTION`` (a conditional update)."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)
    api_key.last_used_at = now


def get_or_create_user(*, username: str, password: str | None = None, is_staff: bool = False):
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=username, defaults={"is_staff": is_staff, "is_superuser": is_staff}
    )
    if created and password:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user
