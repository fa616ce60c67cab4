"""`strategy: shadow` on KServe: an InferenceService for the candidate, traffic mirrored by our predictor.

Place in the flow: workflows/targets/rollout.py calls `run` when the pin's strategy is shadow and
another version is live. It applies `<name>-shadow` (the candidate, never routed to by KServe),
re-applies the live InferenceService with `--shadow-url <the shadow's URL>` so the live predictor
(workflows/predictor.py) posts a copy of each request to it in the background and tallies
agreement (workflows/shadow.py HttpMirror), sends `min_requests` requests to the live URL, and
reads the tally from `GET <live>/v1/models/<model>/shadow`. Then either the caller promotes (the
live InferenceService applied with the candidate, no shadow URL) and the shadow is deleted, or
the live one is re-applied as it was, the shadow deleted, and the figures raised as CheckFailed.
Works in both deployment modes (no traffic split is needed).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from workflows import shadow
from workflows.steps.common import CheckFailed
from workflows.targets import kserve

ROLE_LABEL = "releasectl.dev/role"
SETTLE_S = 30.0  # how long to wait for the mirror's in-flight copies before judging


def shadow_name(environment: str, model: str) -> str:
    """`<environment>-<model>-shadow` within KServe's 45 characters (hash-shortened like isvc_name)."""
    name = kserve.isvc_name(environment, model) + "-shadow"
    if len(name) > kserve.NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[: kserve.NAME_MAX - 18].rstrip('-')}-{digest}-shadow"
    return name


def shadow_service(opts: kserve.Options, environment: str, model: str, version: str, artifact: str) -> dict[str, Any]:
    body = kserve.inference_service(opts, environment, model, version, artifact, None)
    body["metadata"]["name"] = shadow_name(environment, model)
    body["metadata"]["labels"][ROLE_LABEL] = "shadow"
    return body


def mirroring(
    opts: kserve.Options, environment: str, model: str, version: str, artifact: str, shadow_url: str
) -> dict[str, Any]:
    """The live InferenceService, unchanged but for the predictor's `--shadow-url`."""
    body = kserve.inference_service(opts, environment, model, version, artifact, None)
    body["spec"]["predictor"]["containers"][0]["args"] += ["--shadow-url", shadow_url]
    return body


def _figures(url: str, model: str, deadline_s: float, poll_s: float) -> dict[str, Any]:
    """The live predictor's tally once no copy is in flight (or at the deadline)."""
    end = time.monotonic() + deadline_s
    while True:
        status, body = kserve._http(f"{url}/v1/models/{model}/shadow")
        figures = body.get("shadow") if status == 200 and isinstance(body, dict) else None
        if isinstance(figures, dict) and (not figures.get("in_flight") or time.monotonic() >= end):
            return figures
        if time.monotonic() >= end:
            raise kserve.ServingTimeout(f"GET {url}/v1/models/{model}/shadow answered {status}: {str(body)[:200]}")
        time.sleep(poll_s)


def run(
    kube: kserve.KServe,
    opts: kserve.Options,
    environment: str,
    model: str,
    live: tuple[str, str],
    candidate: tuple[str, str],
    bounds: shadow.Bounds,
    rows: Any,
    classes: list[Any],
    report: dict[str, Any],
) -> None:
    """Shadow `candidate` (version, artifact) behind `live`; return when it may be promoted."""
    (live_version, live_artifact), (version, artifact) = live, candidate
    name = shadow_name(environment, model)

    def apply(body: dict[str, Any]) -> dict[str, Any]:
        applied = kube.apply(body)
        return kube.wait_ready(body["metadata"]["name"], int((applied.get("metadata") or {}).get("generation") or 1))

    def back() -> None:
        kube.apply(kserve.inference_service(opts, environment, model, live_version, live_artifact, None))
        kube.delete(name)

    report["shadow_service"] = f"{opts.namespace}/{name}"
    try:
        shadow_url = kserve.endpoint(apply(shadow_service(opts, environment, model, version, artifact)))
        url = kserve.endpoint(apply(mirroring(opts, environment, model, live_version, live_artifact, shadow_url)))
        live_s: list[float] = []
        for i in range(bounds.min_requests):
            row = np.asarray(rows[i % len(rows)], dtype=np.float64).reshape(1, -1).tolist()
            started = time.perf_counter()
            status, body = kserve._http(f"{url}/v1/models/{model}:predict", {"instances": row})
            live_s.append(time.perf_counter() - started)
            if not kserve.answers_ok(status, body, classes, 1) or body.get("model_version") != live_version:
                raise CheckFailed(f"the live predictor answered {status}: {str(body)[:200]} during the shadow")
        figures = _figures(url, model, SETTLE_S, opts.poll_s)
    except BaseException:
        back()
        raise
    # The live side's latency as callers see it: the round trips measured here, like the shadow's.
    live_p95 = shadow.p95(live_s)
    shadow_p95 = figures.get("shadow_p95_ms")
    figures = {**figures, "live_p95_ms": live_p95}
    figures["latency_ratio"] = round(shadow_p95 / live_p95, 4) if shadow_p95 is not None and live_p95 else None
    figures.pop("version", None)
    report["shadow"] = {**figures, **bounds.as_dict()}
    print(f"shadow {version}: {figures.get('requests')} mirrored requests, agreement {figures.get('agreement')}")
    why = shadow.judge(figures, bounds)
    if why is not None:
        back()
        raise CheckFailed(
            f"shadow {version} not promoted: {why}; bounds {bounds.as_dict()}; {live_version} kept serving"
        )


def cleanup(kube: kserve.KServe, environment: str, model: str) -> bool:
    """Delete the shadow InferenceService (after promotion, or with the model); whether there was one."""
    return kube.delete(shadow_name(environment, model))
