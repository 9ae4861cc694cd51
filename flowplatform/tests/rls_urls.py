"""The project's URLs plus two probes that report, from inside a request, which connection
served it and what row-level security let it see (tests of ``flowplatform.tenancy``)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns


def probe() -> dict[str, Any]:
    """Deliberately unscoped: every flow the database lets this transaction see."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), current_setting('app.current_organization', true),"
            " current_setting('app.bypass_rls', true), (SELECT count(*) FROM executions_flow)"
        )
        pid, organization, bypassing, flows = cursor.fetchone()
    return {
        "pid": pid,
        "organization": organization or "",
        "bypass": bypassing == "on",
        "flows": flows,
    }


class ApiProbe(APIView):
    """Authenticated like every API view (API key or session)."""

    def get(self, request: Request) -> Response:
        return Response(probe())


def plain_probe(request: HttpRequest) -> JsonResponse:
    """No authentication: nothing scopes its transaction."""
    return JsonResponse(probe())


urlpatterns = [
    path("rls-probe/api", ApiProbe.as_view()),
    path("rls-probe/plain", plain_probe),
    *project_urlpatterns,
]
