"""Reads of the outbox for WebSocket streams: the latest id and pages for replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from django.db.models import Max, QuerySet

from flowplatform.models import Organization
from realtime.groups import flow_group, summaries_group
from realtime.models import Event
from realtime.publisher import SUMMARY_EVENT_TYPES, event_message

REPLAY_PAGE_SIZE = 500


class FlowVisible(Protocol):
    """Whether ``flow_id`` is one of ``organization``'s live flows: the flows are another
    app's, which the project's wiring passes in (``config.routing``)."""

    def __call__(self, *, organization: Organization, flow_id: UUID) -> bool: ...


@dataclass(frozen=True)
class Stream:
    """One subscribable sequence of events: a flow's, or an organization's task outputs."""

    organization_id: UUID
    flow_id: UUID | None = None

    @property
    def group(self) -> str:
        if self.flow_id is not None:
            return flow_group(self.flow_id)
        return summaries_group(self.organization_id)

    def events(self) -> QuerySet[Event]:
        qs = Event.objects.filter(organization_id=self.organization_id)
        if self.flow_id is not None:
            return qs.filter(flow_id=self.flow_id)
        return qs.filter(type__in=sorted(SUMMARY_EVENT_TYPES))

    def accepts(self, message: dict[str, Any]) -> bool:
        """Whether a live message belongs here (the group already says so; defence in depth)."""
        if message.get("organization_id") != str(self.organization_id):
            return False
        if self.flow_id is not None:
            return message.get("flow_id") == str(self.flow_id)
        return message.get("event_type") in SUMMARY_EVENT_TYPES


def flow_stream(
    *, organization: Organization, flow_id: UUID, flow_visible: FlowVisible
) -> Stream | None:
    """The stream of the organization's flow; None when ``flow_visible`` says it is
    unknown, foreign or deleted."""
    if not flow_visible(organization=organization, flow_id=flow_id):
        return None
    return Stream(organization_id=organization.id, flow_id=flow_id)


def summary_stream(*, organization: Organization) -> Stream:
    return Stream(organization_id=organization.id)


def latest_event_id(*, stream: Stream) -> int:
    """The newest event id visible in ``stream`` now (0 when it has none)."""
    return stream.events().aggregate(last=Max("id"))["last"] or 0


def events_page(
    *, stream: Stream, after: int, upto: int | None = None, limit: int = REPLAY_PAGE_SIZE
) -> list[dict[str, Any]]:
    """Up to ``limit`` events with ``after < id <= upto``, oldest first, as clients get them."""
    qs = stream.events().filter(id__gt=after)
    if upto is not None:
        qs = qs.filter(id__lte=upto)
    return [event_message(row) for row in qs.order_by("id")[:limit]]
