"""Browser pages mounted at the site root, with session login and logout."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from executions.pages import views

app_name = "pages"

urlpatterns = [
    path("", views.flow_list, name="flows"),
    path("flows/<uuid:flow_id>", views.flow_detail, name="flow"),
    path("flows/<uuid:flow_id>/executions", views.start_execution, name="start-execution"),
    path("executions/<uuid:execution_id>", views.execution_detail, name="execution"),
    path(
        "pages-api/executions/<uuid:execution_id>/status-history",
        views.status_history,
        name="status-history",
    ),
    path(
        "login",
        auth_views.LoginView.as_view(
            template_name="pages/login.html", next_page="/", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout", auth_views.LogoutView.as_view(next_page="/login"), name="logout"),
]
