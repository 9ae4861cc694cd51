"""WebSocket routes. Authentication happens in the consumers (``realtime.auth``)."""

from __future__ import annotations

from channels.routing import URLRouter
from django.urls import path, re_path

from realtime.consumers import FlowConsumer, NotFoundConsumer, SummaryConsumer

websocket_urlpatterns = [
    path("ws/flows/<uuid:flow_id>", FlowConsumer.as_asgi()),
    path("ws/summaries", SummaryConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]

websocket_application = URLRouter(websocket_urlpatterns)
