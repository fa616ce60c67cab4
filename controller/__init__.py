"""releasectl: a GitOps promotion controller for machine-learning models."""

__version__ = "0.1.0"
