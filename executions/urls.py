from executions.api import (
    executors,
    flow_executions,
    flows,
    task_executions,
    task_outputs,
    worker,
)

# Workers' routes first: they are most of the traffic, and a URL is matched in this order.
urlpatterns = [
    *task_executions.urlpatterns,
    *worker.urlpatterns,
    *task_outputs.urlpatterns,
    *flow_executions.urlpatterns,
    *flows.urlpatterns,
    *executors.urlpatterns,
]
