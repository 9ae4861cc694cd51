from django.urls import path

from outputs.api import TaskOutputDetailView, TaskOutputListCreateView

urlpatterns = [
    path("task-outputs", TaskOutputListCreateView.as_view(), name="task-outputs"),
    path(
        "task-outputs/<str:task_output_id>",
        TaskOutputDetailView.as_view(),
        name="task-output-detail",
    ),
]
