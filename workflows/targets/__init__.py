"""Serving targets the deploy step can put a model on besides the local one (workflows/serving.py)."""
