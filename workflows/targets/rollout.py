"""How the deploy step rolls a version out on KServe: direct, blue-green, or canary steps.

Place in the flow: workflows/steps/deploy.py calls `deploy` and `undeploy` here when the serving
URI is `kserve://<namespace>`; the InferenceService shape and the API calls are in
workflows/targets/kserve.py. A check that says no (a canary step over its error budget, a failed
health check, canary asked of Standard mode, a shadow below its bounds:
workflows/targets/shadow.py) is a CheckFailed (Failed), after the version that was
live before is serving again; a deadline or an API failure is infrastructure (Errored).
"""

from __future__ import annotations

from typing import Any

from controller.ports import LABEL_VERSION
from workflows.shadow import Bounds
from workflows.steps.common import CheckFailed, short
from workflows.targets import kserve
from workflows.targets import shadow as shadow_target


def _live(isvc: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(artifact, version) of what an existing InferenceService serves."""
    if not isvc:
        return None, None
    meta = isvc.get("metadata") or {}
    artifact = (meta.get("annotations") or {}).get(kserve.ARTIFACT_ANNOTATION)
    version = (meta.get("labels") or {}).get(LABEL_VERSION)
    return artifact, version


def _apply_and_wait(api: kserve.KServe, body: dict[str, Any]) -> dict[str, Any]:
    applied = api.apply(body)
    generation = int((applied.get("metadata") or {}).get("generation") or 1)
    return api.wait_ready(body["metadata"]["name"], generation)


def deploy(
    opts: kserve.Options,
    environment: str,
    model: str,
    version: str,
    artifact: str,
    strategy: str,
    canary: tuple[list[int], float, int],
    rows: Any,
    classes: list[Any],
    report: dict[str, Any],
    api: kserve.KServe | None = None,
    shadow: Bounds | None = None,
) -> dict[str, Any]:
    """Put `artifact` live for (environment, model) by `strategy`; the report, filled in."""
    if strategy == "canary" and opts.mode != "Knative":
        raise CheckFailed(
            "canary needs KServe's Knative deployment mode: spec.predictor.canaryTrafficPercent is ignored "
            f"in {opts.mode} mode, so the traffic could not be split; use strategy direct or blue-green, or "
            "run the controller with --serving-mode knative"
        )
    kube = api or kserve.KServe(opts)
    name = kserve.isvc_name(environment, model)
    before = kube.get(name)
    live_artifact, live_version = _live(before)
    report.update(
        target="kserve", inference_service=f"{opts.namespace}/{name}", mode=opts.mode, previous_version=live_version
    )

    def manifest(percent: int | None, chosen: str = artifact, chosen_version: str = version) -> dict[str, Any]:
        return kserve.inference_service(opts, environment, model, chosen_version, chosen, percent)

    def restore() -> str:
        """Back to what served before: canary to 0 in Knative mode, else the previous version re-applied."""
        if live_artifact and live_version:
            if opts.mode == "Knative":
                kube.apply(manifest(0))
            else:
                kube.apply(manifest(None, live_artifact, live_version))
            return f"rolled back to {live_version}"
        kube.delete(name)
        return "removed it (nothing was live before)"

    pending = (before or {}).get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
    if live_artifact == artifact and live_version == version and pending is None:
        ready = kube.wait_ready(name, int((before or {}).get("metadata", {}).get("generation") or 1))
        problem = kserve.health_check(kserve.endpoint(ready), model, version, rows, classes)
        if problem:
            raise CheckFailed(f"health check of {version}, already live, failed: {problem}")
        report["already_live"] = True
        print(f"{model} {version} ({short(artifact)}) is already live in {opts.namespace}/{name}; health ok")
        return report

    try:
        if strategy == "canary" and live_artifact and live_artifact != artifact:
            weights, max_error_rate, requests = canary
            for weight in weights:
                ready = _apply_and_wait(kube, manifest(weight))
                got = kserve.measure(kserve.endpoint(ready), model, rows, requests, classes, version, weight)
                routed = got["candidate_requests"]
                rate = got["errors"] / routed if routed else 0.0
                report["steps"].append({"weight": weight, **got, "error_rate": round(rate, 6)})
                print(
                    f"canary {weight}%: {routed} of {got['requests']} requests to {version}, {got['errors']} errors"
                    f" ({got['live_errors']} on {live_version})"
                )
                if rate > max_error_rate:
                    back = restore()
                    raise CheckFailed(f"canary error rate {rate:.3f} > {max_error_rate:g} at {weight}% traffic; {back}")
        if strategy == "shadow" and shadow is not None and live_artifact and live_version:
            target = (live_version, live_artifact), (version, artifact)
            shadow_target.run(kube, opts, environment, model, *target, shadow, rows, classes, report)
        ready = _apply_and_wait(kube, manifest(None))  # direct, blue-green, or the canary's/shadow's promotion
        problem = kserve.health_check(kserve.endpoint(ready), model, version, rows, classes)
        if problem:
            back = restore()
            raise CheckFailed(f"health check of {version} after the switch failed: {problem}; {back}")
    except kserve.ServingTimeout:
        if live_artifact:
            restore()
        raise
    finally:
        if strategy == "shadow":
            shadow_target.cleanup(kube, environment, model)
    print(f"deployed {model} {version} ({short(artifact)}) to {opts.namespace}/{name} by {strategy}")
    return report


def undeploy(opts: kserve.Options, environment: str, model: str, api: kserve.KServe | None = None) -> bool:
    """Delete the InferenceService (idempotent); whether there was one."""
    kube = api or kserve.KServe(opts)
    shadow_target.cleanup(kube, environment, model)  # a shadow a crashed rollout left behind
    return kube.delete(kserve.isvc_name(environment, model))
