"""Argo Workflows for releasectl, written with Hera, and the step functions they run."""
