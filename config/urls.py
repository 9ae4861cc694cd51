from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from flowplatform.api import ApiNotFoundView, MeView
from flowplatform.health import healthz, readyz
from flowplatform.metrics import metrics_view

api_patterns = [
    path("", include("executions.urls")),
    path("me", MeView.as_view(), name="me"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    # Any other path under /api/ (``.*$`` would miss paths with a newline, %0A, which then
    # got Django's HTML 404 instead of the JSON envelope).
    re_path(r"^api/", ApiNotFoundView.as_view()),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("realtime.urls")),
    path("", include("executions.pages.urls")),
]
