"""The current, displayable output of each task of a flow execution."""

from __future__ import annotations

import uuid

from django.db import models

from flowplatform.models import Organization
from outputs.enums import EditedStatus, StaleStatus, TaskOutputStatus


class TaskOutput(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="task_outputs"
    )
    # No index of its own: the unique (flow_execution, task_name) serves every lookup by
    # flow execution (a narrower index could be chosen for a key under a low estimate).
    flow_execution = models.ForeignKey(
        "executions.FlowExecution",
        on_delete=models.CASCADE,
        related_name="task_outputs",
        db_index=False,
    )
    flow_version = models.PositiveIntegerField(null=True, blank=True)
    task_name = models.CharField(max_length=200)
    summary = models.JSONField(null=True)
    output = models.JSONField(null=True, blank=True)
    tags = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=TaskOutputStatus.choices, default=TaskOutputStatus.QUEUED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    modified_by = models.CharField(max_length=200, default="system")
    edited_status = models.CharField(
        max_length=30, choices=EditedStatus.choices, default=EditedStatus.NOT_EDITED
    )
    stale_status = models.CharField(
        max_length=20, choices=StaleStatus.choices, default=StaleStatus.CONSISTENT
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow_execution", "task_name"], name="uniq_task_output_per_task"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="to_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} ({self.status})"
