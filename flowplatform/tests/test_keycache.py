"""API keys found live are kept for ``API_KEY_CACHE_SECONDS`` (``flowplatform.keycache``):
requests within it cost no key lookup; what revokes or disables a key in this process takes
effect at once; past the TTL the key is looked up again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from flowplatform import keycache
from flowplatform.models import ApiKey, Organization
from flowplatform.services import (
    create_api_key,
    find_active_api_key,
    get_or_create_user,
    hash_key,
    revoke_api_key,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    keycache.forget()
    yield
    keycache.forget()


def key_lookups(queries) -> int:  # noqa: ANN001
    return sum(1 for q in queries if ApiKey._meta.db_table in q["sql"] and "SELECT" in q["sql"])


def me(raw_key: str) -> int:
    return Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code


def test_a_key_is_looked_up_once_within_the_ttl(tenant):
    with CaptureQueriesContext(connection) as first:
        assert me(tenant.user_key) == 200
    with CaptureQueriesContext(connection) as second:
        assert me(tenant.user_key) == 200
        assert me(tenant.user_key) == 200
    assert key_lookups(first.captured_queries) == 1
    assert key_lookups(second.captured_queries) == 0


def test_past_the_ttl_the_key_is_looked_up_again(tenant, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(keycache.time, "monotonic", lambda: now[0])
    assert me(tenant.user_key) == 200
    now[0] += keycache.ttl() + 0.01
    with CaptureQueriesContext(connection) as later:
        assert me(tenant.user_key) == 200
    assert key_lookups(later.captured_queries) == 1


@override_settings(API_KEY_CACHE_SECONDS=0)
def test_a_ttl_of_zero_looks_up_every_request(tenant):
    with CaptureQueriesContext(connection) as queries:
        assert me(tenant.user_key) == 200
        assert me(tenant.user_key) == 200
    assert key_lookups(queries.captured_queries) == 2


def test_revoking_a_key_takes_effect_at_once(tenant):
    assert me(tenant.user_key) == 200
    revoke_api_key(api_key=tenant.user_api_key)
    assert me(tenant.user_key) == 401
    assert me(tenant.service_key) == 200


def test_deactivating_the_user_takes_effect_at_once(tenant):
    assert me(tenant.user_key) == 200
    tenant.user.is_active = False
    tenant.user.save()
    assert me(tenant.user_key) == 401


def test_deleting_the_organization_takes_effect_at_once(tenant):
    assert me(tenant.service_key) == 200
    Organization.objects.filter(id=tenant.organization.id).delete()
    assert me(tenant.service_key) == 401


def test_a_key_revoked_elsewhere_stops_working_within_the_ttl(tenant, monkeypatch):
    """Another process revoked it (here: the row changed behind this process's back)."""
    now = [1000.0]
    monkeypatch.setattr(keycache.time, "monotonic", lambda: now[0])
    assert me(tenant.user_key) == 200
    ApiKey.objects.filter(id=tenant.user_api_key.id).update(revoked_at="2026-01-01T00:00:00Z")
    assert me(tenant.user_key) == 200  # still trusted: the documented window
    now[0] += keycache.ttl() + 0.01
    assert me(tenant.user_key) == 401


def test_unknown_and_revoked_keys_are_never_kept(tenant):
    revoke_api_key(api_key=tenant.user_api_key)
    assert find_active_api_key(raw_key=tenant.user_key) is None
    assert find_active_api_key(raw_key="fpk_" + "x" * 40) is None
    assert keycache.get(hash_key(tenant.user_key)) is None
    assert keycache.get(hash_key("fpk_" + "x" * 40)) is None


def test_the_cache_stays_bounded(tenant, monkeypatch):
    monkeypatch.setattr(keycache, "MAX_KEYS", 3)
    user = get_or_create_user(username="many")
    raws = [
        create_api_key(organization=tenant.organization, kind="user", user=user)[1]
        for _ in range(5)
    ]
    for raw in raws:
        assert find_active_api_key(raw_key=raw) is not None
    assert len(keycache._keys) <= 3


def test_a_key_is_known_without_queries_only_when_cached_and_its_use_recorded_lately(
    tenant, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from flowplatform.services import LAST_USED_RESOLUTION, known_api_key

    assert known_api_key(raw_key=tenant.service_key) is None  # never looked up here
    assert me(tenant.service_key) == 200  # looked up, cached, its use recorded
    with CaptureQueriesContext(connection) as queries:
        key = known_api_key(raw_key=tenant.service_key)
    assert queries.captured_queries == []
    assert key is not None and key.hashed_key == hash_key(tenant.service_key)
    assert key.organization.id == tenant.organization.id
    assert known_api_key(raw_key="fpk_" + "x" * 40) is None
    assert known_api_key(raw_key="not a key") is None
    # Its use is due to be recorded again: that takes a query, so it is not known.
    later = timezone.now() + LAST_USED_RESOLUTION + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert known_api_key(raw_key=tenant.service_key) is None
    monkeypatch.undo()
    revoke_api_key(api_key=ApiKey.objects.get(hashed_key=hash_key(tenant.service_key)))
    assert known_api_key(raw_key=tenant.service_key) is None
