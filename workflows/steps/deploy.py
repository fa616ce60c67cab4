"""Step 4 of a deploy workflow: put the artifact live on the serving target, by strategy.

Place in the flow: the DAG task `deploy` (controller.core.contract.DEPLOY), after evaluate passed (or
alone, for a rollback to an artifact this environment ran before), and `undeploy` (UNDEPLOY) for
a deleted pin. It rewrites `<serving>/<environment>/<model>.json`, which the serving endpoint
(workflows/serving.py) follows: `direct` switches after a health check, `blue-green` installs the
candidate at weight 0, checks it and switches all traffic, `canary` raises the candidate's weight
step by step through the same Router the endpoint uses and rolls back (the old live keeps
serving) when its error rate is too high, `shadow` mirrors live traffic to the candidate and
promotes it when it agrees enough (workflows/steps/deploy_shadow.py). A rollback or failed
check is a CheckFailed (exit 2).
With a `kserve://<namespace>` serving URI the same step applies a KServe InferenceService instead
(workflows/targets/rollout.py).
"""

import itertools
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from hera.workflows import Parameter
from numpy.typing import NDArray

from workflows import datasets, serving, store
from workflows.shadow import parse_bounds as shadow_bounds
from workflows.steps.common import (
    CheckFailed,
    canary_wants_more,
    check_label,
    checked,
    dumps,
    json_object_param,
    path_from_uri,
    short,
    utc_now,
)
from workflows.steps.deploy_shadow import run_shadow

STRATEGIES = ("direct", "blue-green", "canary", "shadow")
DEFAULT_CANARY: dict[str, Any] = {"steps": [10, 50, 100], "max_error_rate": 0.01, "requests_per_step": 200}
SMOKE_ROWS = 20


def canary_plan(text: str) -> tuple[list[int], float, int]:
    """(weights, max error rate, requests per step) from the pin's `deployment.canary` JSON."""
    plan = {**DEFAULT_CANARY, **json_object_param(text, "canary")}
    steps, rate, requests = plan["steps"], plan["max_error_rate"], plan["requests_per_step"]
    if (
        not isinstance(steps, list)
        or not steps
        or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 100 for s in steps)
        or any(b <= a for a, b in itertools.pairwise(steps))
        or steps[-1] != 100
    ):
        raise CheckFailed(f"canary.steps must be whole percentages that increase and end at 100, got {steps!r}")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise CheckFailed(f"canary.max_error_rate must be between 0 and 1, got {rate!r}")
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise CheckFailed(f"canary.requests_per_step must be a positive integer, got {requests!r}")
    return steps, float(rate), requests


def traffic_rows(
    store_dir: store.StoreLike,
    artifact: str,
    data_uri: str,
    dataset: str,
    dataset_sha256: str,
    dataset_uri: str = "",
    dataset_format: str = "",
    target_column: str = "",
) -> NDArray[np.float64]:
    """Rows to send: the held-out rows of the dataset when given, else zeros of the artifact's width."""
    info = store.meta(store_dir, artifact) if store.has_meta(store_dir, artifact) else {}
    if data_uri and dataset and dataset_sha256:
        data = datasets.load_pinned(data_uri, dataset, dataset_sha256, dataset_uri, dataset_format, target_column)
        _, X_test, _, _ = datasets.split(data, int(info.get("seed", 0)))
        return np.asarray(X_test, dtype=np.float64)
    return np.zeros((1, int(info.get("n_features", 0))), dtype=np.float64)


def health_check(store_dir: store.StoreLike, artifact: str, version: str) -> Any:
    """The artifact loads through the store (digest, allow-list) and answers one of its classes."""
    try:
        estimator = store.get(store_dir, artifact)
        probe = np.zeros((1, int(estimator.n_features_in_)))
        answer = estimator.predict(probe)[0]
        classes = list(estimator.classes_)
        if answer not in classes:
            raise ValueError(f"answered {answer!r}, not one of {classes}")
    except store.ArtifactMissing:
        raise  # infrastructure: Errored (retried), not a failed check of the user's version
    except Exception as exc:
        raise CheckFailed(f"health check of {version} ({artifact}) failed: {exc}") from None
    return estimator


def smoke(router: serving.Router, slot: serving.Slot, rows: NDArray[np.float64]) -> str | None:
    """None when the slot answers every row through the Router; else why not."""
    try:
        router.predict_with(slot, rows[:SMOKE_ROWS])
    except Exception as exc:
        return str(exc)
    return None


def _slot(model: str, role: str, entry: dict[str, Any]) -> serving.Slot:
    return serving.Slot(model=model, role=role, version=entry["version"], artifact=entry["artifact"])


@checked
def deploy(
    environment: str,
    model: str,
    version: str,
    artifact: str,
    spec_digest: str,
    strategy: str,
    canary: str,
    store_uri: str,
    serving_uri: str,
    data_uri: str = "",
    dataset: str = "",
    dataset_sha256: str = "",
    dataset_uri: str = "",
    dataset_format: str = "",
    target_column: str = "",
    serving_options: str = "",
    shadow: str = "",
) -> tuple[Annotated[str, Parameter(name="artifact")], Annotated[str, Parameter(name="report")]]:
    check_label(environment, "environment")
    check_label(model, "model")
    if strategy not in STRATEGIES:
        raise CheckFailed(f"unknown deployment strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    weights, max_error_rate, requests = canary_plan(canary) if strategy == "canary" else ([], 0.0, 0)
    bounds = shadow_bounds(shadow) if strategy == "shadow" else None
    store_dir = store_uri
    estimator = health_check(store_dir, artifact, version)
    rows = traffic_rows(
        store_dir, artifact, data_uri, dataset, dataset_sha256, dataset_uri, dataset_format, target_column
    )
    if serving_uri.startswith("kserve://"):
        from workflows.targets import kserve, rollout

        opts = kserve.Options.parse(serving_uri, serving_options, store_uri)
        classes = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
        report: dict[str, Any] = {"strategy": strategy, "steps": [], "health": "ok", "version": version}
        report["artifact"] = artifact
        try:
            rollout.deploy(
                opts,
                environment,
                model,
                version,
                artifact,
                strategy,
                (weights, max_error_rate, requests),
                rows,
                classes,
                report,
                shadow=bounds,
            )
        except CheckFailed as exc:  # the canary steps or shadow figures that said no go to the trail
            raise CheckFailed(str(exc), outputs={"report": dumps(report)}) from None
        return artifact, dumps(report)
    serving_dir = path_from_uri(serving_uri, "serving_uri")

    with serving.locked(serving_dir, environment, model):
        before = serving.read_state(serving_dir, environment, model)
        live = before.get("live") if before else None
        restore = {k: v for k, v in {**before, "candidate": None}.items() if k != "shadow"} if before else None
        report = {
            "strategy": strategy,
            "steps": [],
            "health": "ok",
            "version": version,
            "artifact": artifact,
            "previous_version": live["version"] if live else None,
        }
        if live and live.get("artifact") == artifact and live.get("version") != version:
            # A new version whose training built the same bytes (deterministic artifacts): nothing to
            # roll out, but what is live is now called by the new version's name.
            renamed = {**(restore or {}), "live": {**live, "version": version, "spec_digest": spec_digest,
                                                    "since": utc_now()}, "previous": live}  # fmt: skip
            serving.write_state(serving_dir, environment, model, renamed)
            report["renamed_from"] = live["version"]
            print(f"{model} {version} has the artifact of {live['version']} ({artifact}): renamed in {environment}")
            return artifact, dumps(report)
        if live and live.get("artifact") == artifact:
            if before and before.get("candidate"):
                serving.write_state(serving_dir, environment, model, restore)
            previous = (before or {}).get("previous")
            report["previous_version"] = previous["version"] if previous else None
            report["already_live"] = True
            print(f"{model} {version} ({artifact}) is already live in {environment}; health ok")
            return artifact, dumps(report)

        entry = {"version": version, "artifact": artifact, "spec_digest": spec_digest, "since": utc_now()}
        base = {"model": model, "environment": environment, "live": live, "previous": (before or {}).get("previous")}
        final = {**base, "live": entry, "candidate": None, "previous": live or base["previous"]}
        router = serving.Router(serving_dir, store_dir, environment, seed=int(artifact[-8:], 16))
        back = f"rolled back to {live['version']}" if live else "removed it (nothing was live before)"
        try:
            if strategy == "blue-green":
                serving.write_state(serving_dir, environment, model, {**base, "candidate": {**entry, "weight": 0}})
                router.forget(model)
                problem = smoke(router, _slot(model, "candidate", entry), rows)
                if problem:
                    raise CheckFailed(f"blue-green check of {version} failed: {problem}; {back}")
            elif strategy == "shadow" and bounds is not None and live is not None:
                run_shadow(router, serving_dir, base, entry, bounds, rows, report, f"{live['version']} kept serving")
            elif strategy == "shadow":
                report["shadow_skipped"] = "nothing was live to compare with: deployed directly"
            elif strategy == "canary":
                run_canary(router, serving_dir, base, entry, weights, max_error_rate, requests, rows, report, back)
            serving.write_state(serving_dir, environment, model, final)
            router.forget(model)
            problem = smoke(router, router.live_slot(model), rows)
            if problem:
                raise CheckFailed(f"endpoint check of {version} after the switch failed: {problem}; {back}")
        except CheckFailed as exc:  # the old live keeps serving; the figures go to the trail
            serving.write_state(serving_dir, environment, model, restore)
            raise CheckFailed(str(exc), outputs={"report": dumps(report)}) from None
        except BaseException:
            # A crash or an interrupt: the old live keeps serving, no candidate.
            serving.write_state(serving_dir, environment, model, restore)
            raise
    print(f"deployed {model} {version} ({short(artifact)}) to {environment} by {strategy}")
    return artifact, dumps(report)


def run_canary(
    router: serving.Router,
    serving_dir: Path,
    base: dict[str, Any],
    entry: dict[str, Any],
    weights: list[int],
    max_error_rate: float,
    requests: int,
    rows: NDArray[np.float64],
    report: dict[str, Any],
    back: str,
) -> None:
    """Raise the candidate's weight step by step; roll back when its error rate is too high."""
    model, environment = base["model"], base["environment"]
    for weight in weights:
        serving.write_state(serving_dir, environment, model, {**base, "candidate": {**entry, "weight": weight}})
        router.forget(model)  # do not rely on the file's mtime alone between two quick writes
        routed = errors = live_errors = 0
        sent = 0  # a step is judged on the candidate's own requests
        while canary_wants_more(sent, routed, requests, weight):
            i, sent = sent, sent + 1
            slot = router.pick(model)
            try:
                router.predict_with(slot, rows[i % len(rows)].reshape(1, -1))
                ok = True
            except Exception:
                ok = False
            if slot.role == "candidate":
                routed += 1
                errors += not ok
            else:
                live_errors += not ok
        rate = errors / routed if routed else 0.0
        report["steps"].append(
            {
                "weight": weight,
                "requests": sent,
                "candidate_requests": routed,
                "errors": errors,
                "error_rate": round(rate, 6),
                "live_errors": live_errors,
            }
        )
        print(f"canary {weight}%: {routed} of {sent} requests to {entry['version']}, {errors} errors")
        if rate > max_error_rate:  # the caller restores the state as it was before the deploy
            raise CheckFailed(f"canary error rate {rate:.3f} > {max_error_rate:g} at {weight}% traffic; {back}")


@checked
def undeploy(
    environment: str, model: str, serving_uri: str, serving_options: str = ""
) -> Annotated[str, Parameter(name="report")]:
    """Remove the model from the environment's serving state (idempotent)."""
    check_label(environment, "environment")
    check_label(model, "model")
    if serving_uri.startswith("kserve://"):
        from workflows.targets import kserve, rollout

        opts = kserve.Options.parse(serving_uri, serving_options or '{"image": "unused"}', "")
        removed = rollout.undeploy(opts, environment, model)
        print(f"{model} removed from {opts.namespace}" if removed else f"{model} was not served in {opts.namespace}")
        return dumps({"removed": removed, "previous_version": None, "environment": environment})
    serving_dir = path_from_uri(serving_uri, "serving_uri")
    with serving.locked(serving_dir, environment, model):
        before = serving.read_state(serving_dir, environment, model)
        serving.write_state(serving_dir, environment, model, None)
    live = before.get("live") if before else None
    print(f"{model} removed from {environment}" if before else f"{model} was not served in {environment}")
    return dumps(
        {
            "removed": before is not None,
            "previous_version": live["version"] if live else None,
            "environment": environment,
        }
    )
