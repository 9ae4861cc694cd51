"""List pages run a fixed number of queries whatever the row count: no per-row queries
(related rows are selected with the page, counts are annotations)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda m: m._meta.label)
# session, user, the page's count and rows, the organization filter's choices, the flow
# filter's choices, the date hierarchy, plus headroom for Django's own bookkeeping; the
# point is that 10 and 200 rows need the same number.
MAX_QUERIES = 12


@pytest.mark.parametrize("rows", [10, 200])
@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_changelist_queries_are_bounded(
    staff_client,
    bulk_world,
    django_assert_max_num_queries,
    model,
    rows,  # noqa: ANN001
):
    bulk_world(rows)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    staff_client.get(url)  # warm caches (content types, permissions)
    with django_assert_max_num_queries(MAX_QUERIES):
        response = staff_client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("rows", [10, 200])
def test_flow_execution_page_queries_do_not_grow_with_its_tasks(
    staff_client,
    bulk_world,
    django_assert_max_num_queries,
    rows,  # noqa: ANN001
):
    world = bulk_world(rows)
    execution = world.executions[0]
    url = reverse("admin:executions_flowexecution_change", args=[execution.pk])
    with django_assert_max_num_queries(MAX_QUERIES + 6):
        assert staff_client.get(url).status_code == 200
