"""manage.py pruneevents: retention of the outbox."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from realtime.models import Event
from realtime.services import prune_events
from realtime.tests.factories import publish_committed, spec

pytestmark = pytest.mark.django_db


def _events(execution, *, days_old: int, count: int) -> list[int]:  # noqa: ANN001
    rows = publish_committed([spec(execution, "task_status.added") for _ in range(count)])
    ids = [row.id for row in rows]
    Event.objects.filter(id__in=ids).update(created_at=timezone.now() - timedelta(days=days_old))
    return ids


def test_prunes_events_older_than_the_retention_setting(execution, settings):
    settings.FLOWPLATFORM_EVENT_RETENTION_DAYS = 10
    _events(execution, days_old=11, count=3)
    recent = _events(execution, days_old=9, count=2)
    out = StringIO()
    call_command("pruneevents", stdout=out)
    assert sorted(Event.objects.values_list("id", flat=True)) == recent
    assert "Deleted 3 event(s) older than 10 day(s)" in out.getvalue()


def test_days_option_and_batches(execution):
    old = _events(execution, days_old=3, count=7)
    kept = _events(execution, days_old=0, count=1)
    call_command("pruneevents", "--days", "2", "--batch-size", "2", stdout=StringIO())
    assert not Event.objects.filter(id__in=old).exists()
    assert list(Event.objects.values_list("id", flat=True)) == kept


def test_prune_service_counts_across_batches(execution):
    _events(execution, days_old=5, count=5)
    assert prune_events(older_than=timezone.now() - timedelta(days=1), batch_size=2) == 5
    assert prune_events(older_than=timezone.now() - timedelta(days=1), batch_size=2) == 0


@pytest.mark.parametrize("args", [["--days", "-1"], ["--batch-size", "0"]])
def test_rejects_bad_options(args):
    with pytest.raises(CommandError):
        call_command("pruneevents", *args, stdout=StringIO())
