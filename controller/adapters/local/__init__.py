"""Executors run compiled Argo Workflow manifests: on this machine (local) or on a cluster (argo)."""

from controller.ports import Executor, NodeResult, WorkflowRun

__all__ = ["Executor", "NodeResult", "WorkflowRun"]
