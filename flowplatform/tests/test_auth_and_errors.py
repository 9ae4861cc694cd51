from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from flowplatform.models import ApiKey, Organization
from flowplatform.services import revoke_api_key

pytestmark = pytest.mark.django_db


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert body["request_id"] == response["X-Request-ID"]
    return body


def test_missing_key_is_401(anon_client):
    assert_envelope(anon_client.get("/api/me"), 401, "unauthorized")


def test_unknown_key_is_401(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer fpk_doesnotexist")
    assert_envelope(anon_client.get("/api/me"), 401, "unauthorized")


@pytest.mark.parametrize(
    "header", ["garbage", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a b", "Token fpk_x"]
)
def test_garbage_authorization_is_401(anon_client, tenant, header):
    anon_client.credentials(HTTP_AUTHORIZATION=header)
    assert_envelope(anon_client.get("/api/me"), 401, "unauthorized")


def test_revoked_key_is_401(tenant):
    client = tenant.client("user")
    assert client.get("/api/me").status_code == 200
    revoke_api_key(api_key=tenant.user_api_key)
    assert_envelope(client.get("/api/me"), 401, "unauthorized")


def test_user_key_resolves_its_organization(user_client, tenant):
    response = user_client.get("/api/me")
    assert response.status_code == 200
    assert response.json()["organization_id"] == str(tenant.organization.id)
    assert response.json()["kind"] == "user"
    assert response.json()["actor"] == str(tenant.user.pk)


def test_x_api_key_header_works(tenant):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=tenant.service_key)
    response = client.get("/api/me")
    assert response.status_code == 200
    assert response.json()["kind"] == "service"
    assert response.json()["actor"] == "system"


def test_last_used_at_recorded(user_client, tenant):
    assert tenant.user_api_key.last_used_at is None
    user_client.get("/api/me")
    tenant.user_api_key.refresh_from_db()
    assert tenant.user_api_key.last_used_at is not None


def test_key_stored_hashed(tenant):
    stored = ApiKey.objects.get(id=tenant.user_api_key.id)
    assert tenant.user_key not in (stored.hashed_key, stored.prefix)
    assert tenant.user_key.startswith(stored.prefix)


@pytest.mark.urls("flowplatform.tests.urls_for_tests")
def test_user_key_on_service_only_endpoint_is_403(user_client, service_client):
    assert_envelope(user_client.get("/api/test/service-only"), 403, "forbidden")
    assert service_client.get("/api/test/service-only").status_code == 200


@pytest.mark.urls("flowplatform.tests.urls_for_tests")
def test_exception_becomes_500_envelope_without_traceback(tenant):
    client = tenant.client("user")
    client.raise_request_exception = False
    response = client.get("/api/test/explode")
    body = assert_envelope(response, 500, "internal_error")
    assert "secret internal detail" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert body["error"]["message"] == "An unexpected error occurred."


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_route_is_404_envelope(user_client, method):
    assert_envelope(getattr(user_client, method)("/api/no-such-thing"), 404, "not_found")


def test_read_only_key_cannot_write(tenant):
    from flowplatform.services import create_api_key

    _, raw = create_api_key(
        organization=tenant.organization, kind="user", user=tenant.user, read_only=True
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/me").status_code == 200
    assert_envelope(client.post("/api/me", {}, format="json"), 403, "forbidden")


def test_method_not_allowed_is_enveloped(user_client):
    assert_envelope(user_client.post("/api/me", {}, format="json"), 405, "method_not_allowed")


def test_incoming_request_id_reused_when_wellformed(user_client):
    rid = "01JD5X8Q3ZK1Y7M2N4P6R8T0VW"
    response = user_client.get("/api/me", HTTP_X_REQUEST_ID=rid)
    assert response["X-Request-ID"] == rid
    response = user_client.get("/api/me", HTTP_X_REQUEST_ID="not a ulid")
    assert response["X-Request-ID"] != "not a ulid"
    assert len(response["X-Request-ID"]) == 26


def test_every_response_has_request_id(anon_client, user_client):
    for response in (
        anon_client.get("/api/me"),
        user_client.get("/api/me"),
        anon_client.get("/healthz"),
        anon_client.get("/api/openapi.json"),
    ):
        assert len(response["X-Request-ID"]) == 26


def test_healthz_reports_database_and_channel_layer(anon_client):
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}


def test_openapi_and_docs_are_served(anon_client):
    schema = anon_client.get("/api/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    docs = anon_client.get("/api/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "https://" not in html.split("<body")[1][:2000].lower()


def test_management_commands_create_org_and_keys(capsys):
    call_command("createorganization", "initech")
    org_id = capsys.readouterr().out.strip()
    org = Organization.objects.get(id=org_id)
    call_command("createapikey", "--organization", "initech", "--kind", "service")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("fpk_") and "\n" not in raw
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/me").json()["organization_id"] == str(org.id)
    call_command("createapikey", "--organization", org_id, "--kind", "user", "--user", "bob")
    raw_user = capsys.readouterr().out.strip()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_user}")
    assert client.get("/api/me").json()["kind"] == "user"


def test_docs_assets_are_served_locally(anon_client):
    html = anon_client.get("/api/docs").content.decode()
    import re

    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets, html
    for asset in assets:
        response = anon_client.get(asset)
        assert response.status_code == 200, asset


@pytest.mark.parametrize("kind", ["user", "service"])
def test_the_key_lookup_loads_exactly_what_the_orm_loads(tenant, kind):
    """``find_active_api_key`` reads the key and its organization, user and service account
    in one hand-written statement; every attribute must equal (value and type) what the
    ORM's ``select_related`` gives, foreign keys included (UUIDs, not text, on SQLite)."""
    from flowplatform.services import find_active_api_key

    raw = tenant.user_key if kind == "user" else tenant.service_key
    found = find_active_api_key(raw_key=raw)
    expected = ApiKey.objects.select_related("organization", "user", "service_account").get(
        pk=found.pk
    )
    for mine, theirs in [
        (found, expected),
        (found.organization, expected.organization),
        (found.user, expected.user),
        (found.service_account, expected.service_account),
    ]:
        assert (mine is None) == (theirs is None)
        if theirs is None:
            continue
        for field in type(theirs)._meta.concrete_fields:
            got, want = getattr(mine, field.attname), getattr(theirs, field.attname)
            assert (got, type(got)) == (want, type(want)), field.attname
