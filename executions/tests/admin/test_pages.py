"""Every admin list, change and add page answers 200 to staff, with data of both
organizations; people who aren't staff are sent to the login page."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from flowplatform.models import Organization

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda m: m._meta.label)


def _url(model, view: str, *args) -> str:  # noqa: ANN001
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _has_org(model) -> bool:  # noqa: ANN001
    return any(f.name == "organization" for f in model._meta.get_fields())


def _objects_per_org(model, organizations) -> list:  # noqa: ANN001
    qs = model._default_manager
    if model is Organization:
        return list(organizations)
    if _has_org(model):
        return [qs.filter(organization=org).first() for org in organizations]
    return list(qs.all()[:2])


@pytest.fixture
def world(bulk_world, tenant, outsider):  # noqa: ANN001, ANN201
    bulk_world(4)
    Group.objects.create(name="operators")
    return [tenant.organization, outsider.organization]


def test_every_model_of_the_project_is_registered():
    labels = {m._meta.label for m in REGISTERED}
    expected = {
        "flowplatform.Organization",
        "flowplatform.Membership",
        "flowplatform.ServiceAccount",
        "flowplatform.ApiKey",
        "executions.Flow",
        "executions.FlowVersion",
        "executions.FlowExecution",
        "executions.TaskExecution",
        "executions.TaskStatus",
        "outputs.TaskOutput",
        "realtime.Event",
    }
    assert expected <= labels


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_changelist_shows_both_organizations(staff_client, world, model):  # noqa: ANN001
    response = staff_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    if _has_org(model) or model is Organization:
        for org in world:
            assert org.name in content, f"{org.name} missing from {model._meta.label}"


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_change_page_of_each_organizations_object(staff_client, world, model):  # noqa: ANN001
    objects = _objects_per_org(model, world)
    assert objects and all(o is not None for o in objects), "fixture lacks data"
    for obj in objects:
        response = staff_client.get(_url(model, "change", obj.pk))
        assert response.status_code == 200, (model, obj)
        assert str(obj.pk) in response.content.decode()


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_add_page_only_where_adding_is_allowed(staff_client, world, model, rf, staff_user):  # noqa: ANN001
    request = rf.get("/")
    request.user = staff_user
    can_add = admin.site._registry[model].has_add_permission(request)
    response = staff_client.get(_url(model, "add"))
    assert response.status_code == (200 if can_add else 403)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_search_and_filters_answer(staff_client, world, model):  # noqa: ANN001
    url = _url(model, "changelist")
    for query in ({"q": "flow"}, {"q": str(world[0].pk)}, {"q": "12"}, {"o": "-1"}):
        assert staff_client.get(url, query).status_code == 200, query


def test_admin_index_lists_the_consoles(staff_client, world):  # noqa: ANN001
    response = staff_client.get(reverse("admin:index"))
    assert response.status_code == 200
    for name in (b"Flow executions", b"Task executions", b"Task outputs", b"Api keys", b"Events"):
        assert name in response.content


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_non_staff_is_sent_to_login(client, django_user_model, world, model):  # noqa: ANN001
    user = django_user_model.objects.create_user(username="plain", password="x" * 12)
    client.force_login(user)
    url = _url(model, "changelist")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    obj = _objects_per_org(model, world)[0]
    assert client.get(_url(model, "change", obj.pk)).status_code == 302


def test_anonymous_is_sent_to_login(client, world):  # noqa: ANN001
    response = client.get(reverse("admin:executions_flowexecution_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


LINKED_PAGES = [
    ("executions", "flowexecution"),
    ("executions", "taskexecution"),
    ("executions", "flow"),
    ("executions", "flowversion"),
    ("executions", "taskstatus"),
    ("outputs", "taskoutput"),
    ("realtime", "event"),
    ("flowplatform", "organization"),
    ("flowplatform", "serviceaccount"),
    ("flowplatform", "apikey"),
]


def test_every_link_between_records_leads_somewhere(staff_client, world):  # noqa: ANN001
    """Links to related records and filtered lists open real pages, not '?e=1' errors."""
    import re

    from django.apps import apps

    links: dict[str, str] = {}
    for app_label, model_name in LINKED_PAGES:
        model = apps.get_model(app_label, model_name)
        obj = _objects_per_org(model, world)[0]
        for page in (_url(model, "change", obj.pk), _url(model, "changelist")):
            html = staff_client.get(page).content.decode()
            for link in re.findall(r'href="(/admin/[^"#]*)"', html):
                link = link.replace("&amp;", "&")
                if "logout" in link or "password_change" in link or re.search(r"[?&]o=", link):
                    continue
                links.setdefault(link, page)
    assert len(links) > 50
    for link, page in sorted(links.items()):
        response = staff_client.get(link)
        assert response.status_code == 200, (page, link, response.get("Location"))
