"""The Argo Workflows adapter: the ArgoExecutor (the only user of Hera's WorkflowsService)."""

from controller.adapters.argo.connection import (
    ArgoAuthError,
    ArgoRejected,
    ArgoTLSError,
    ArgoUnavailable,
    Connection,
    TokenSource,
)
from controller.adapters.argo.executor import ArgoExecutor

__all__ = [
    "ArgoAuthError",
    "ArgoExecutor",
    "ArgoRejected",
    "ArgoTLSError",
    "ArgoUnavailable",
    "Connection",
    "TokenSource",
]
