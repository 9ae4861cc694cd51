"""Gauges of the engine's state, read from the database at scrape time (``/metrics``)."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from executions.models import FlowExecution, TaskExecution


class DatabaseCollector(Collector):
    """Queue depth and flow executions by status, read from the database at scrape time so
    every process reports the same truth."""

    def collect(self):  # noqa: ANN201
        queued = GaugeMetricFamily(
            "flowplatform_queued_tasks", "Queued task executions by executor", labels=["executor"]
        )
        rows = (
            TaskExecution.objects.filter(status="queued")
            .values("task_executor_name")
            .annotate(n=Count("id"))
        )
        for row in rows:
            queued.add_metric([row["task_executor_name"] or "-"], row["n"])
        yield queued
        yield GaugeMetricFamily(
            "flowplatform_running_tasks",
            "Running task executions",
            value=TaskExecution.objects.filter(status="running").count(),
        )
        by_status = GaugeMetricFamily(
            "flowplatform_flow_executions", "Flow executions by status", labels=["status"]
        )
        for row in FlowExecution.objects.values("status").annotate(n=Count("id")):
            by_status.add_metric([row["status"]], row["n"])
        yield by_status
