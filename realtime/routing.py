"""WebSocket routes."""

from __future__ import annotations

from channels.routing import URLRouter
from django.urls import path


def _routes() -> list:
    try:
        from realtime.consumers import FlowConsumer, SummaryConsumer
    except ImportError:  # consumers not built yet
        return []
    return [
        path("ws/flows/<uuid:flow_id>", FlowConsumer.as_asgi()),
        path("ws/summaries", SummaryConsumer.as_asgi()),
    ]


websocket_application = URLRouter(_routes())
