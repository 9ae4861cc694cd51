"""Channel-layer group names, built here and nowhere else ([A-Za-z0-9._-], < 100 chars)."""

from __future__ import annotations

from uuid import UUID


def flow_group(flow_id: UUID | str) -> str:
    return f"flow.{flow_id}"


def summaries_group(organization_id: UUID | str) -> str:
    return f"summaries.{organization_id}"
