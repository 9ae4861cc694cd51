"""Prometheus metrics: counters updated where things happen, gauges computed at scrape time.

With several server processes set ``PROMETHEUS_MULTIPROC_DIR`` to a shared empty directory
so counters from every process are summed on each scrape.
"""

from __future__ import annotations

import ipaddress
import os
import secrets

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import REGISTRY, Collector

from flowplatform import tenancy

REQUESTS = Counter(
    "flowplatform_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
REQUEST_LATENCY = Histogram(
    "flowplatform_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLAIMS = Counter("flowplatform_task_claims_total", "Task executions claimed by workers")
LEASE_EXPIRIES = Counter("flowplatform_lease_expiries_total", "Leases that expired")
RETRIES = Counter("flowplatform_task_retries_total", "Retry attempts scheduled")
TASK_TRANSITIONS = Counter(
    "flowplatform_task_transitions_total", "Task execution status changes", ["status"]
)
EVENTS_PUBLISHED = Counter("flowplatform_events_published_total", "Events pushed to clients")
PUBLISH_FAILURES = Counter("flowplatform_event_publish_failures_total", "Failed event pushes")
WEBSOCKET_CONNECTIONS = Counter(
    "flowplatform_websocket_connections_total", "WebSocket connections", ["outcome"]
)
WEBSOCKET_DISCONNECTIONS = Counter(
    "flowplatform_websocket_disconnections_total", "WebSocket disconnections"
)


_database_collectors: list[Collector] = []


def register_database_collector(collector: Collector) -> None:
    """Gauges an app reads from the database at scrape time (so every process reports the
    same truth), bypassing row-level security: ``/metrics`` counts every organization."""
    if collector not in _database_collectors:
        _database_collectors.append(collector)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        return secrets.compare_digest(header, f"Bearer {token}")
    remote = request.META.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in settings.METRICS_ALLOWED_NETWORKS)


@transaction.non_atomic_requests
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Guarded by ``METRICS_TOKEN`` (Bearer) when set, else by
    ``METRICS_ALLOWED_NETWORKS`` (loopback by default)."""
    if not _allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    registry = _registry()
    with tenancy.bypass():  # gauges count every organization's rows
        db_metrics = generate_latest(_DbOnly())
    body = generate_latest(registry) + db_metrics
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class _DbOnly(CollectorRegistry):
    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        for collector in _database_collectors:
            self.register(collector)


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_LATENCY.labels(method, route).observe(seconds)
