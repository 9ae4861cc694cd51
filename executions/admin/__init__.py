"""Staff admin of the executions app (Django loads this package to register its pages)."""

from executions.admin import flow_executions, flows, tasks

__all__ = ["flow_executions", "flows", "tasks"]
