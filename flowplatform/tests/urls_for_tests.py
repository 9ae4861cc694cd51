"""The real URLconf plus two views that exist only to exercise error handling."""

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as real_patterns
from flowplatform.permissions import IsServiceKey


class ExplodingView(APIView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("secret internal detail")


class ServiceOnlyView(APIView):
    permission_classes = [IsServiceKey]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("api/test/explode", ExplodingView.as_view()),
    path("api/test/service-only", ServiceOnlyView.as_view()),
    *real_patterns,
]
