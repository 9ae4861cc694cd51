"""Liveness and readiness probes (plain Django views: no authentication, no DRF)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

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


def healthz(request: HttpRequest) -> JsonResponse:
    """Database and channel layer reachable → 200; otherwise 503 naming what failed."""
    checks = {"database": check_database(), "channel_layer": check_channel_layer()}
    ok = all(value is None for value in checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": {name: "ok" if err is None else f"error: {err}" for name, err in checks.items()},
    }
    return JsonResponse(body, status=200 if ok else 503)


def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
