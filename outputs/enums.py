"""The statuses of task outputs, and the edit and staleness flags they share with task
executions (the engine keeps an output in step with its task's latest execution)."""

from __future__ import annotations

from django.db import models


class TaskOutputStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    DELETED = "deleted"
    STALE = "stale"


class EditedStatus(models.TextChoices):
    NOT_EDITED = "not_edited"
    EDITED_NOT_REEXECUTED = "edited_not_reexecuted"
    EDITED_REEXECUTED = "edited_reexecuted"


class StaleStatus(models.TextChoices):
    CONSISTENT = "consistent"
    STALE = "stale"
