"""The audit report's types; `releasectl audit --format json` prints one, schemas/AuditReport.json publishes it.

Place in the flow: what controller/core/audit.py's fold returns and audit_render.py prints. Pure.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SliceRow(_Row):
    slice: str
    rows: int
    value: float | None
    gated: bool = True


class GateRow(_Row):
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    kind: str = "gate"
    slice: str | None = None
    slices: list[SliceRow] | None = None


class ApprovalRow(_Row):
    identity: str
    commit: str
    key: str | None = None


class OutcomeRow(_Row):
    commit: str
    phase: str
    at: datetime
    reason: str = ""
    action: str | None = None
    adopted: bool = False
    workflow: str | None = None
    artifact: str | None = None
    gates: list[GateRow] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    approvals: list[ApprovalRow] = Field(default_factory=list)
    upstream_environment: str | None = None
    upstream_commit: str | None = None
    policy_digest: str | None = None
    dataset_sha256: str | None = None
    drift_psi_max: float | None = None
    canary_steps: list[int] = Field(default_factory=list)
    lead_time_s: float | None = None
    signed_by: str | None = None
    provenance: dict[str, str] | None = Field(default=None, description="Digests of the training's inputs")


class ChangeRow(_Row):
    commit: str
    kind: str
    version: str
    spec_digest: str | None
    authors: list[str]
    merger: str
    at: datetime
    subject: str
    outcomes: list[OutcomeRow] = Field(default_factory=list)
    final_phase: str | None = None
    time_to_deploy_s: float | None = None
    rollback: bool = False
    time_to_restore_s: float | None = None


class ModelReport(_Row):
    model: str
    changes: list[ChangeRow]


class EnvironmentReport(_Row):
    environment: str
    models: list[ModelReport]


class Summary(_Row):
    changes: int
    deploys: int
    rollbacks: int
    failed: int = Field(description="Deploy attempts that Failed, plus deployed versions later rolled back from")
    change_failure_rate: float | None
    median_lead_time_s: float | None = Field(description="Median seconds from a change to its Deployed outcome")


class Break(_Row):
    commit: str
    rule: str
    message: str

    def line(self) -> str:
        return f"{self.commit}: {self.message} [{self.rule}]"


class AuditReport(_Row):
    """`releasectl audit --format json`: every change per environment and model, from git alone."""

    api_version: str = Field(default="releasectl/v1", alias="apiVersion")
    kind: str = "AuditReport"
    head: str
    since: datetime | None = None
    until: datetime | None = None
    summary: Summary
    environments: list[EnvironmentReport]
    breaks: list[Break] | None = Field(default=None, description="With --verify: every break in the chain")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def report_schema() -> dict[str, Any]:
    schema = AuditReport.model_json_schema(by_alias=True, mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://releasectl.dev/schemas/v1/AuditReport.json",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(report_schema(), indent=2, sort_keys=True) + "\n"
