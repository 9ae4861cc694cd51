"""ASGI entry point: HTTP (Django) and WebSockets (Channels) in one application."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.handlers import ASGIHandler  # noqa: E402

django_asgi_app = ASGIHandler()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from config.lifecycle import GoingAwayMiddleware  # noqa: E402
from config.routing import websocket_application  # noqa: E402
from flowplatform.bodylimit import BodyLimitMiddleware  # noqa: E402

# GoingAwayMiddleware: on server shutdown every WebSocket is closed with 1001 (lifecycle).
application = ProtocolTypeRouter(
    {
        # BodyLimitMiddleware: bodies over MAX_REQUEST_BODY_BYTES get 413 before Django reads
        # them (flowplatform.bodylimit).
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": GoingAwayMiddleware(websocket_application),
    }
)
