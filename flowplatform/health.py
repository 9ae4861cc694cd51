"""Liveness and readiness probes (plain Django views: no authentication, no DRF)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse

from flowplatform import shutdown

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"{type(exc).__name__}"
    return None


async def _probe_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    group = f"healthz.{uuid.uuid4().hex}"
    await asyncio.wait_for(layer.group_send(group, {"type": "health.probe"}), timeout=2)


def check_channel_layer() -> str | None:
    try:
        async_to_sync(_probe_channel_layer)()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}"
    return None


def _checks() -> dict[str, str]:
    checks = {"database": check_database(), "channel_layer": check_channel_layer()}
    return {name: "ok" if err is None else f"error: {err}" for name, err in checks.items()}


# No request transaction (ATOMIC_REQUESTS): opening one would fail before the probe could
# report the database as down.
@transaction.non_atomic_requests
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 while the process serves requests; the body reports the dependencies
    so a person can see at a glance whether the database and channel layer are reachable."""
    checks = _checks()
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ok else "degraded", "checks": checks})


@transaction.non_atomic_requests
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 unless the database and the channel layer are reachable, and while
    the process shuts down (the load balancer stops sending it traffic)."""
    if shutdown.begun():
        return JsonResponse({"status": "shutting_down", "checks": {}}, status=503)
    checks = _checks()
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
