"""The event outbox: every state change, in commit order, replayable by id."""

from __future__ import annotations

from django.db import models

from flowplatform.models import Organization


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    flow_id = models.UUIDField(null=True, blank=True)
    flow_execution_id = models.UUIDField(null=True, blank=True)
    task_name = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    data = models.JSONField(null=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["flow_id", "id"], name="event_flow_id"),
            models.Index(fields=["organization", "id"], name="event_org_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.type}"
