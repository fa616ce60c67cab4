"""Benchmarks of the controller against raw git plumbing (`make bench`)."""
