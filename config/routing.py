"""WebSocket routes. Authentication happens in the consumers (``realtime.auth``); which
flows a flow stream may name is the executions app's answer, passed in here."""

from __future__ import annotations

from channels.routing import URLRouter
from django.urls import path, re_path

from executions.selectors import flow_visible
from realtime.consumers import FlowConsumer, NotFoundConsumer, SummaryConsumer

websocket_urlpatterns = [
    path("ws/flows/<uuid:flow_id>", FlowConsumer.as_asgi(flow_visible=flow_visible)),
    path("ws/summaries", SummaryConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]

websocket_application = URLRouter(websocket_urlpatterns)
