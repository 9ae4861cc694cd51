"""Pieces of the executions admin: the flow form, list filters, read-only inlines, helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from executions import dsl
from executions.models import Flow, TaskExecution, TaskStatus
from flowplatform.admin_utils import (
    ReadOnlyInline,
    admin_link,
    as_uuid,
    pretty_json,
    status_badge,
)
from outputs.models import TaskOutput

# Inline rows show a preview; the full value is on the record's own page.
INLINE_JSON_LIMIT = 2_000
# How many flows the flow filter offers when no organization is chosen.
FLOW_FILTER_CHOICES = 50


@dataclass(frozen=True)
class EngineOperation:
    key: str
    label: str
    done: str
    only_stale: bool = False
    css: str = ""
    url: str = ""

    def with_url(self, url: str) -> EngineOperation:
        return replace(self, url=url)


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {seconds} s" if hours else f"{minutes} min {seconds} s"


def error_summary(error: Any) -> str:
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        text = ": ".join(str(part) for part in (kind, message) if part)
        return text[:200] if text else "error"
    return str(error)[:200]


# -- the flow form ----------------------------------------------------------------------------


class DefinitionField(forms.Field):
    """A flow definition as YAML or JSON text, validated with ``dsl.validate_definition``;
    shown as indented JSON."""

    widget = forms.Textarea(
        attrs={"rows": 24, "cols": 100, "class": "fp-mono", "spellcheck": "false"}
    )

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)

    def to_python(self, value: Any) -> Any:
        if value in (None, ""):
            return None
        try:
            return dsl.parse_definition(value)
        except dsl.DefinitionError as exc:
            raise ValidationError(_problem_messages(exc)) from None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is None:
            return
        try:
            dsl.validate_definition(value)
        except dsl.DefinitionError as exc:
            raise ValidationError(_problem_messages(exc)) from None

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != initial
        except ValidationError:
            return True


def _problem_messages(exc: dsl.DefinitionError) -> list[str]:
    return [f"{p.loc}: {p.msg}" if p.loc else p.msg for p in exc.problems] or [str(exc)]


class FlowForm(forms.ModelForm):
    definition = DefinitionField(
        help_text=(
            "YAML or JSON. Validated on save; a changed definition creates a new flow version "
            "(running executions keep the version they started on)."
        )
    )

    class Meta:
        model = Flow
        fields = ("organization", "display_name", "description", "tags", "definition")


# -- list filters -----------------------------------------------------------------------------


class FlowFilter(admin.SimpleListFilter):
    """Flows of the chosen organization (or the newest ones): the full list could be huge."""

    title = "flow"
    parameter_name = "flow"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        flows = Flow.objects.select_related("organization").order_by("-created_at")
        organization = as_uuid(request.GET.get("organization__id__exact", ""))
        if organization is not None:
            flows = flows.filter(organization_id=organization)
        choices = [
            (str(flow.pk), f"{flow.display_name} ({flow.organization.name})")
            for flow in flows[:FLOW_FILTER_CHOICES]
        ]
        chosen = self.value()
        if chosen and as_uuid(chosen) and chosen not in {pk for pk, _ in choices}:
            flow = Flow.objects.filter(pk=chosen).select_related("organization").first()
            if flow is not None:
                choices.insert(0, (chosen, f"{flow.display_name} ({flow.organization.name})"))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        value = as_uuid(self.value())
        if value is None:
            raise IncorrectLookupParameters(f"{self.value()!r} is not a flow id.")
        return queryset.filter(flow_id=value)


# -- read-only inlines of the flow execution page ---------------------------------------------


class TaskExecutionInline(ReadOnlyInline):
    model = TaskExecution
    verbose_name_plural = "task executions (every attempt)"
    ordering = ("created_at", "task_name", "task_execution_idx")
    fields = (
        "task",
        "index",
        "status_display",
        "attempts",
        "task_executor_name",
        "edits",
        "run_time",
        "error_display",
        "output_preview",
    )
    readonly_fields = fields

    @admin.display(description="task")
    def task(self, obj: TaskExecution) -> str:
        return admin_link(TaskExecution, obj.pk, obj.task_name)

    @admin.display(description="status")
    def status_display(self, obj: TaskExecution) -> str:
        return status_badge(obj.status)

    @admin.display(description="attempt")
    def attempts(self, obj: TaskExecution) -> str:
        return f"{obj.attempt}/{obj.max_attempts}"

    @admin.display(description="edited / stale")
    def edits(self, obj: TaskExecution) -> str:
        return format_html(
            "{}<br>{}", obj.get_edited_status_display(), status_badge(obj.stale_status)
        )

    @admin.display(description="#")
    def index(self, obj: TaskExecution) -> int:
        return obj.task_execution_idx

    @admin.display(description="run time")
    def run_time(self, obj: TaskExecution) -> str:
        return format_html(
            '<span class="fp-nowrap">{}</span>', duration(obj.started_at, obj.completed_at)
        )

    @admin.display(description="error")
    def error_display(self, obj: TaskExecution) -> str:
        return error_summary(obj.error) if obj.error else "—"

    @admin.display(description="output")
    def output_preview(self, obj: TaskExecution) -> str:
        return pretty_json(obj.output, limit=INLINE_JSON_LIMIT)


class TaskOutputInline(ReadOnlyInline):
    model = TaskOutput
    verbose_name_plural = "task outputs (current result of each task)"
    ordering = ("created_at", "task_name")
    fields = (
        "task",
        "status_display",
        "edits",
        "summary_preview",
        "output_preview",
        "updated_at",
        "modified_by",
    )
    readonly_fields = fields

    @admin.display(description="task")
    def task(self, obj: TaskOutput) -> str:
        return admin_link(TaskOutput, obj.pk, obj.task_name)

    @admin.display(description="status")
    def status_display(self, obj: TaskOutput) -> str:
        return status_badge(obj.status)

    @admin.display(description="edited / stale")
    def edits(self, obj: TaskOutput) -> str:
        return format_html(
            "{}<br>{}", obj.get_edited_status_display(), status_badge(obj.stale_status)
        )

    @admin.display(description="summary")
    def summary_preview(self, obj: TaskOutput) -> str:
        return pretty_json(obj.summary, limit=INLINE_JSON_LIMIT)

    @admin.display(description="output")
    def output_preview(self, obj: TaskOutput) -> str:
        return pretty_json(obj.output, limit=INLINE_JSON_LIMIT)


class TaskStatusInline(ReadOnlyInline):
    model = TaskStatus
    verbose_name_plural = "task status history (as reported by workers)"
    ordering = ("seq",)
    fields = ("task_name", "status_display", "created_at")
    readonly_fields = fields

    @admin.display(description="status")
    def status_display(self, obj: TaskStatus) -> str:
        return status_badge(obj.status)


__all__ = [
    "DefinitionField",
    "EngineOperation",
    "FlowFilter",
    "FlowForm",
    "TaskExecutionInline",
    "TaskOutputInline",
    "TaskStatusInline",
    "duration",
    "error_summary",
]
