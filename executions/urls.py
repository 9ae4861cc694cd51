from executions.api import (
    executors,
    flow_executions,
    flows,
    task_executions,
    task_outputs,
    worker,
)

urlpatterns = [
    *flows.urlpatterns,
    *flow_executions.urlpatterns,
    *worker.urlpatterns,
    *task_executions.urlpatterns,
    *executors.urlpatterns,
    *task_outputs.urlpatterns,
]
