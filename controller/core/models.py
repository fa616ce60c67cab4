"""Typed data of the whole flow: what users write, what the controller records, what it decides.

Place in the flow: everything else passes these values around. Frozen pydantic v2 models for the
three documents of the release repo (ModelPin, PromotionPolicy, ModelStatus), from which
schemas/*.json are generated, and the small frozen types of a decision (Action, Plan) and of its
result (Outcome). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

API_VERSION = "releasectl/v1"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_LABEL_RE = re.compile(DNS_LABEL)
SEMVER = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
SEMVER_RE = re.compile(SEMVER)
SHA256_HEX = r"^[0-9a-f]{64}$"
DIGEST = r"^sha256:[0-9a-f]{64}$"
GIT_SHA = r"^[0-9a-f]{40}$"
GATE = r"^(>=|<=|>|<|==)\s*-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
GATE_RE = re.compile(r"^(>=|<=|>|<|==)\s*(\S+)$")
DURATION = r"^[0-9]+[smhd]$"
# Plain ASCII addresses only: no spaces, quotes, shell metacharacters or look-alike letters.
EMAIL = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,8}$"

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL)]
SemVer = Annotated[str, StringConstraints(pattern=SEMVER, max_length=128)]
Digest = Annotated[str, StringConstraints(pattern=DIGEST)]
GitSha = Annotated[str, StringConstraints(pattern=GIT_SHA)]
Email = Annotated[str, StringConstraints(pattern=EMAIL)]

# What the embedded steps can compute, and which way is better. A gate on anything else is
# rejected when the pin is read, not discovered half-way through a workflow.
METRICS: dict[str, Literal["higher", "lower"]] = {
    "accuracy": "higher",
    "balanced_accuracy": "higher",
    "f1_macro": "higher",
    "roc_auc": "higher",
    "log_loss": "lower",
    "p50_latency_ms": "lower",
    "p95_latency_ms": "lower",
    # Recall of the positive class (the larger label) for two classes, macro-averaged for more.
    "recall": "higher",
}
Metric = Literal[
    "accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "p50_latency_ms", "p95_latency_ms", "recall"
]
# What a slice gate can bound: the quality metrics (latency is a property of the model, not of a slice).
SliceMetric = Literal["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "recall"]

# Recipes the embedded default ships (workflows/recipes), with the parameters each accepts.
RECIPES: dict[str, dict[str, type]] = {
    "gradient-boosting": {
        "n_estimators": int,
        "learning_rate": float,
        "max_depth": int,
        "subsample": float,
        "seed": int,
    },
    "random-forest": {"n_estimators": int, "max_depth": int, "min_samples_leaf": int, "seed": int},
    "logistic-regression": {"C": float, "max_iter": int, "seed": int},
}
BUILTIN_RECIPES = tuple(RECIPES)
PARAM_KINDS = (int, float, bool, str)


def register_recipe(name: str, params: Mapping[str, type]) -> None:
    """Add a recipe a team installed (workflows/recipes reads the `releasectl.recipes` entry points).

    Pins are checked against RECIPES, so a pin naming it validates exactly as a built-in's does.
    Built-ins cannot be replaced.
    """
    if name in BUILTIN_RECIPES or not DNS_LABEL_RE.match(name):
        raise ValueError(f"cannot register recipe {name!r}: a built-in name or not a DNS label")
    if any(kind not in PARAM_KINDS for kind in params.values()):
        raise ValueError(f"recipe {name}: parameter types must be int, float, bool or str")
    RECIPES[name] = {**params, "seed": int}


# Any DNS label in the schema: which recipes exist depends on what is installed (pins.pin_rules checks it).
Recipe = Annotated[
    str,
    StringConstraints(pattern=DNS_LABEL),
    Field(description="A training recipe: built in (" + ", ".join(RECIPES) + ") or a releasectl.recipes entry point"),
]

_STRICT = ConfigDict(frozen=True, extra="forbid")


class _Frozen(BaseModel):
    model_config = _STRICT


# ---------------------------------------------------------------------------------------------
# ModelPin


DATASET_URI = r"^(file:///[^\s?#]+|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s?#]+)$"
TARGET_COLUMN = r"^[^\s,\"][^,\"\r\n]{0,127}$"


class DatasetRef(_Frozen):
    """A snapshot in the data catalog (by name), or a user's own file (by `uri`), pinned by sha256.

    The optional fields are left out of the canonical JSON when unset, so the spec digest of a
    catalog-dataset pin is what it was before they existed.
    """

    name: DnsLabel = Field(
        description="A dataset in the data catalog (breast-cancer, wine, digits, ...), or a name for `uri`"
    )
    sha256: Annotated[str, StringConstraints(pattern=SHA256_HEX)] = Field(
        description="sha256 of the dataset snapshot the model must be trained on (of the file's bytes, for `uri`)"
    )
    uri: Annotated[str, StringConstraints(pattern=DATASET_URI, max_length=1024)] | None = Field(
        default=None, description="A user's dataset: file:///absolute/path or s3://bucket/key, CSV or Parquet"
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="csv or parquet (default: from the uri's suffix: .csv, .parquet or .pq)"
    )
    target: Annotated[str, StringConstraints(pattern=TARGET_COLUMN)] | None = Field(
        default=None,
        description="The column of integer class labels (default: target); every other column is a feature",
    )

    @model_validator(mode="after")
    def _uri_fields(self) -> DatasetRef:
        if self.uri is None and (self.format is not None or self.target is not None):
            raise ValueError("dataset.format and dataset.target need dataset.uri (catalog snapshots have their own)")
        if self.uri is not None and self.format is None and not self.uri.lower().endswith((".csv", ".parquet", ".pq")):
            raise ValueError("dataset.format must be given when dataset.uri does not end in .csv, .parquet or .pq")
        return self

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in ("name", "sha256")}


class Training(_Frozen):
    recipe: Recipe
    dataset: DatasetRef
    params: dict[str, int | float | str | bool] = Field(
        default_factory=dict, description="Recipe parameters; `seed` is required"
    )


class SliceSpec(_Frozen):
    """One way to cut the held-out rows: a column's values, or a numeric feature's quantile buckets."""

    feature: Annotated[str, StringConstraints(pattern=TARGET_COLUMN)] = Field(
        description="A feature column of the dataset (e.g. a sensitive attribute such as sex)"
    )
    quantiles: Annotated[int, Field(ge=2, le=20)] | None = Field(
        default=None,
        description="Cut a numeric feature into this many quantile buckets (edges from the whole dataset); "
        "without it, each distinct value (at most 50) is a slice",
    )


class Evaluation(_Frozen):
    gates: dict[Metric, Annotated[str, StringConstraints(pattern=GATE)]] = Field(
        default_factory=dict, description='Each metric must satisfy "<op> <threshold>", e.g. ">= 0.95"'
    )
    max_regression: dict[Metric, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="How much worse than the version live in this environment a metric may be",
    )
    max_drift_psi: float = Field(
        default=0.25,
        ge=0,
        description="Largest population stability index per feature against the live version's data",
    )
    slices: list[SliceSpec] = Field(
        default_factory=list, max_length=8, description="Cuts of the held-out rows to report every metric on"
    )
    min_slice: dict[SliceMetric, Annotated[str, StringConstraints(pattern=GATE)]] = Field(
        default_factory=dict, description='The worst slice of each cut must satisfy "<op> <threshold>"'
    )
    max_slice_gap: dict[SliceMetric, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="Largest difference of a metric between the slices of one cut"
    )
    min_slice_rows: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="A slice with fewer held-out rows is recorded but not gated; a cut with too few gated "
        "slices for its gate (1 for min_slice, 2 for max_slice_gap) fails that gate",
    )

    @model_validator(mode="after")
    def _slices_named(self) -> Evaluation:
        if (self.min_slice or self.max_slice_gap) and not self.slices:
            raise ValueError("evaluation.min_slice and evaluation.max_slice_gap need evaluation.slices")
        features = [s.feature for s in self.slices]
        if len(set(features)) != len(features):
            raise ValueError("evaluation.slices names a feature twice")
        return self


class Canary(_Frozen):
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [10, 50, 100], min_length=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    requests_per_step: int = Field(default=200, ge=10, le=100_000)

    @model_validator(mode="after")
    def _increasing_to_full(self) -> Canary:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)) or self.steps[-1] != 100:
            raise ValueError("canary.steps must increase strictly and end at 100")
        return self


class Shadow(_Frozen):
    """`strategy: shadow`: the candidate gets a copy of live traffic; it is promoted when it agrees enough."""

    min_requests: int = Field(default=200, ge=10, le=100_000, description="Mirrored requests to judge on")
    min_agreement: float = Field(
        default=0.95, ge=0, le=1, description="Share of mirrored requests where it answers what live answered"
    )
    max_latency_ratio: float | None = Field(
        default=None, gt=0, description="Largest p95 latency of the candidate over the live version's"
    )
    max_p95_latency_ms: float | None = Field(default=None, gt=0, description="Largest p95 latency of the candidate")


class Deployment(_Frozen):
    strategy: Literal["direct", "canary", "blue-green", "shadow"] = "direct"
    canary: Canary = Field(default_factory=Canary)
    shadow: Shadow = Field(default_factory=Shadow)


class DriftThresholds(_Frozen):
    """`releasectl drift`: when the inputs served differ enough from the live version's training data."""

    psi: float = Field(default=0.2, gt=0, description="A feature drifts when its PSI exceeds this")
    ks: float = Field(default=0.15, gt=0, le=1, description="... or its two-sample KS statistic exceeds this")
    min_samples: int = Field(default=200, ge=10, le=1_000_000, description="Fewer served rows decide nothing")


class Monitoring(_Frozen):
    drift: DriftThresholds = Field(default_factory=DriftThresholds)


class ModelPin(_Frozen):
    """environments/<env>/<model>.yaml: which version of a model an environment should run."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    api_version: Literal["releasectl/v1"] = Field(alias="apiVersion")
    kind: Literal["ModelPin"]
    model: DnsLabel
    version: SemVer
    owner: Email
    training: Training
    evaluation: Evaluation = Field(default_factory=Evaluation)
    deployment: Deployment = Field(default_factory=Deployment)
    monitoring: Monitoring = Field(default_factory=Monitoring)

    def spec_digest(self) -> str:
        """sha256 of the canonical JSON of model, version and training: what "a version" means."""
        body = {
            "model": self.model,
            "version": self.version,
            "training": self.training.model_dump(mode="json"),
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# PromotionPolicy


class Approvals(_Frozen):
    min: int = Field(default=0, ge=0)
    from_: list[Email] = Field(default_factory=list, alias="from")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class EnvironmentPolicy(_Frozen):
    requires: DnsLabel | None = Field(
        default=None, description="The environment that must have Deployed the same spec digest first"
    )
    min_soak: Annotated[str, StringConstraints(pattern=DURATION)] | None = Field(
        default=None, description="How long the spec must have been Deployed there (e.g. 30m, 1h, 2d)"
    )
    approvals: Approvals = Field(default_factory=Approvals)
    require_signed: bool = False


class PromotionPolicy(_Frozen):
    """environments/policy.yaml: the order of environments and what a change in each needs."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    api_version: Literal["releasectl/v1"] = Field(alias="apiVersion")
    kind: Literal["PromotionPolicy"]
    order: list[DnsLabel] = Field(min_length=1)
    environments: dict[DnsLabel, EnvironmentPolicy] = Field(default_factory=dict)
    rollback_requires_approval: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> PromotionPolicy:
        if len(set(self.order)) != len(self.order):
            raise ValueError("order lists an environment twice")
        for env in self.environments:
            if env not in self.order:
                raise ValueError(f"environments.{env} is not in order")
        for i, env in enumerate(self.order):
            req = self.for_env(env).requires
            if req is not None and (i == 0 or self.order[i - 1] != req):
                raise ValueError(f"environments.{env}.requires must name the environment before it in order")
        return self

    def for_env(self, env: str) -> EnvironmentPolicy:
        return self.environments.get(env) or EnvironmentPolicy()


def duration_seconds(text: str) -> int:
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


# ---------------------------------------------------------------------------------------------
# ModelStatus


class Phase(StrEnum):
    DEPLOYED = "Deployed"
    BLOCKED = "Blocked"
    REJECTED = "Rejected"
    FAILED = "Failed"
    ERRORED = "Errored"
    SUPERSEDED = "Superseded"
    REMOVED = "Removed"


class DesiredRef(_Frozen):
    version: str = Field(description="The pin's version, or `unknown` when the pin could not be read")
    spec_digest: Digest | None = None
    source_commit: GitSha


class LiveRef(_Frozen):
    version: SemVer
    spec_digest: Digest
    artifact: Digest
    since: datetime
    dataset_sha256: Annotated[str, StringConstraints(pattern=SHA256_HEX)] | None = Field(
        default=None, description="The snapshot it was trained on: the reference for drift checks"
    )
    rolled_back_at: datetime | None = Field(
        default=None,
        description="When a rollback moved this environment away from it: it then needs the whole policy again",
    )


class WorkflowRef(_Frozen):
    name: str
    executor: str
    started: datetime | None = None
    finished: datetime | None = None


class SliceValue(_Frozen):
    """A metric on one slice of the held-out rows; `gated` false when the slice is too small or undefined."""

    slice: str
    rows: int
    value: float | None
    gated: bool = True


class GateResult(_Frozen):
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    kind: Literal["gate", "regression", "slice", "slice_gap"] = "gate"
    slice: str | None = Field(default=None, description="The worst slice (slice), or the two slices apart (slice_gap)")
    slices: list[SliceValue] | None = Field(default=None, description="The metric on every slice, when slices are set")


class ApprovalRef(_Frozen):
    """An approval that counted: who, in which commit, and the key that verified it (if signed)."""

    identity: Email
    commit: GitSha
    key: str | None = Field(default=None, description="Fingerprint of the ssh key that verified the approving commit")


class UpstreamRef(_Frozen):
    """The `requires` evidence: the outcome in the previous environment that Deployed this spec."""

    environment: DnsLabel
    since: datetime
    outcome_commit: GitSha | None = Field(default=None, description="The status commit of that Deployed outcome")


class DriftRef(_Frozen):
    psi_max: float | None = None
    feature: str | None = None
    reference: Annotated[str, StringConstraints(pattern=SHA256_HEX)] | None = None


class CanaryStepRef(_Frozen):
    weight: int
    requests: int
    candidate_requests: int = 0
    errors: int = 0
    error_rate: float = 0.0


class ProvenanceRef(_Frozen):
    """What the artifact was trained from (the per-dependency list is in the artifact's metadata)."""

    dependencies: Digest
    code: Digest
    data: Digest


class ShadowRef(_Frozen):
    """A shadow rollout's figures: what the candidate was judged on, and the bounds."""

    requests: int
    agreement: float | None = None
    live_p95_ms: float | None = None
    shadow_p95_ms: float | None = None
    min_requests: int | None = None
    min_agreement: float | None = None
    max_latency_ratio: float | None = None
    max_p95_latency_ms: float | None = None


class OutcomeEvidence(_Frozen):
    """What an auditor needs to trust an outcome, from the trail alone (nothing from the controller's disk)."""

    action: str | None = Field(
        default=None, description="What the controller did: deploy, rollback, remove, block, ..."
    )
    adopted: bool = Field(default=False, description="The first pass over a repository without a trail")
    approvals: list[ApprovalRef] = Field(default_factory=list, description="The approvals that counted")
    policy_digest: Digest | None = Field(default=None, description="sha256 of environments/policy.yaml in force")
    upstream: UpstreamRef | None = None
    dataset_sha256: Annotated[str, StringConstraints(pattern=SHA256_HEX)] | None = None
    drift: DriftRef | None = None
    canary: list[CanaryStepRef] = Field(default_factory=list)
    shadow: ShadowRef | None = None
    merged_at: datetime | None = Field(default=None, description="When the commit that set the pin was made")
    lead_time_s: float | None = Field(default=None, description="Seconds from that commit to this outcome")
    provenance: ProvenanceRef | None = Field(default=None, description="Digests of the training's inputs")


class ModelStatus(_Frozen):
    """status/<env>/<model>.yaml: the latest outcome for a pin, written only by the controller."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    api_version: Literal["releasectl/v1"] = Field(default="releasectl/v1", alias="apiVersion")
    kind: Literal["ModelStatus"] = "ModelStatus"
    model: DnsLabel
    environment: DnsLabel
    phase: Phase
    reason: str = ""
    desired: DesiredRef
    live: LiveRef | None = None
    artifact: Digest | None = Field(default=None, description="The artifact this outcome built or used")
    workflow: WorkflowRef | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    gates: list[GateResult] = Field(default_factory=list)
    attempts: int = Field(default=0, ge=0, description="Consecutive Errored outcomes for this desired pin")
    deployed: list[LiveRef] = Field(
        default_factory=list,
        description="Versions this environment has run, newest first (at most 20): rollback evidence",
    )
    evidence: OutcomeEvidence | None = None


DEPLOYED_HISTORY = 20


# ---------------------------------------------------------------------------------------------
# A decision and its result


class ActionKind(StrEnum):
    DEPLOY = "deploy"  # a new or changed pin: train when no artifact has this digest, else reuse
    ROLLBACK = "rollback"  # the pin returns to a digest this environment ran: deploy-only
    REMOVE = "remove"  # the pin was deleted
    BLOCK = "block"  # policy says not yet
    REJECT = "reject"  # the pin is invalid
    SUPERSEDE = "supersede"  # a merged change that a later one replaced before it ran


RUNNABLE = frozenset({ActionKind.DEPLOY, ActionKind.ROLLBACK, ActionKind.REMOVE})


class Action(_Frozen):
    kind: ActionKind
    environment: DnsLabel
    model: DnsLabel
    version: str
    source_commit: GitSha
    spec_digest: Digest | None = None
    reason: str = ""
    pin: ModelPin | None = None
    artifact: Digest | None = Field(default=None, description="An existing artifact to deploy (no training)")
    live: LiveRef | None = None
    adopted: bool = False
    attempts: int = 0
    approvals: tuple[ApprovalRef, ...] = Field(default=(), description="The approvals that counted for this change")
    upstream: UpstreamRef | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.environment, self.model)

    @property
    def trains(self) -> bool:
        return self.kind is ActionKind.DEPLOY and self.artifact is None

    @property
    def workflow_name(self) -> str:
        """Deterministic, so that a resubmission after a crash attaches to the run that exists."""
        seed = f"{self.kind}:{self.spec_digest or ''}:{self.source_commit}"
        if self.attempts:  # a retry after Errored is a new run; the Errored one stays as it ended
            seed += f":retry-{self.attempts}"
        short = hashlib.sha256(seed.encode()).hexdigest()[:10]
        name = f"rc-{self.environment}-{self.model}-{short}"
        if len(name) > 63:  # a label value and a pod-name prefix must stay within 63 characters
            name = f"rc-{self.environment[:16].rstrip('-')}-{self.model[:30].rstrip('-')}-{short}"
        return name


class Plan(_Frozen):
    actions: tuple[Action, ...] = ()
    in_sync: tuple[tuple[str, str], ...] = Field(default=(), description="(env, model) with nothing to do")
    waiting: tuple[tuple[str, str, str], ...] = Field(
        default=(), description="(env, model, why) still Blocked or backing off, already recorded"
    )

    def runnable(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind in RUNNABLE)

    def records_only(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind not in RUNNABLE)


class Outcome(_Frozen):
    """What happened to one action; becomes one status commit."""

    action: Action
    phase: Phase
    reason: str = ""
    artifact: Digest | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    gates: tuple[GateResult, ...] = ()
    workflow: WorkflowRef | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    evidence: OutcomeEvidence | None = Field(default=None, description="Set before recording (trail.build_evidence)")
