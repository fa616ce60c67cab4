"""Prometheus metrics of the long-running controller (GET /metrics, text exposition format).

Place in the flow: beside the loop. The loop feeds it after every pass (its result, duration,
outcomes, push retries, submissions with their merge-to-submission time), the server after every
webhook request; `/metrics` renders one registry of our own, so nothing global leaks between tests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
PASS_RESULTS = ("ok", "idle", "stalled", "transient", "error", "follower")
WEBHOOK_RESULTS = ("accepted", "unauthorized", "too_large", "bad_request", "not_found", "not_configured")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter("releasectl_passes", "Reconciliation passes by result", ["result"], registry=r)
        self.pass_seconds = Histogram(
            "releasectl_pass_duration_seconds",
            "Wall time of one pass",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.in_flight = Gauge("releasectl_runs_in_flight", "Workflow runs submitted and not yet collected", registry=r)
        self.outcomes = Counter(
            "releasectl_outcomes", "Outcomes recorded, by phase and environment", ["phase", "environment"], registry=r
        )
        self.push_retries = Counter("releasectl_push_retries", "Status pushes retried after a rejection", registry=r)
        self.last_success = Gauge(
            "releasectl_last_successful_pass_timestamp_seconds", "Unix time of the last pass that succeeded", registry=r
        )
        self.webhooks = Counter("releasectl_webhook_requests", "Webhook requests by result", ["result"], registry=r)
        self.merge_to_submission = Histogram(
            "releasectl_merge_to_submission_seconds",
            "From the commit that set a pin to the submission of its workflow",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=r,
        )
        self.stalled = Gauge("releasectl_stalled", "1 while the controller refuses to act (see /readyz)", registry=r)
        for result in PASS_RESULTS:
            self.passes.labels(result)
        for result in WEBHOOK_RESULTS:
            self.webhooks.labels(result)

    def render(self) -> bytes:
        text: bytes = generate_latest(self.registry)
        return text
