"""The deploy step's `shadow` strategy on the local serving target.

Place in the flow: workflows/steps/deploy.py calls `run_shadow` for `strategy: shadow` when a
version is live. It writes the state file with the candidate as `shadow` (the live version keeps
answering every caller: the Router mirrors each live request to the shadow and drops its
answers), sends `min_requests` requests of held-out rows through the same Router the endpoint
uses, and judges the tally (workflows/shadow.py). The figures and bounds go into the step's
report (then the trail's evidence); a shadow that does not meet the bounds is a CheckFailed
whose reason carries them, and the caller restores the state as it was (the shadow removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from workflows import serving, shadow
from workflows.steps.common import CheckFailed


def run_shadow(
    router: serving.Router,
    serving_dir: Path,
    base: dict[str, Any],
    entry: dict[str, Any],
    bounds: shadow.Bounds,
    rows: NDArray[np.float64],
    report: dict[str, Any],
    back: str,
) -> None:
    """Mirror live traffic to the candidate; return when it may be promoted, else CheckFailed."""
    model, environment = base["model"], base["environment"]
    router.estimator(entry["artifact"])  # loaded before timing: the first mirrored request is not a load
    serving.write_state(serving_dir, environment, model, {**base, "candidate": None, "shadow": entry})
    router.forget(model)
    with router._lock:  # a fresh tally: the figures are this rollout's alone
        router.shadow_tallies.pop((model, entry["artifact"]), None)
    live_version = base["live"]["version"]
    for i in range(bounds.min_requests):
        _, slot = router.predict(model, rows[i % len(rows)].reshape(1, -1))
        if slot.role != "live" or slot.version != live_version:  # the shadow must never answer
            raise RuntimeError(f"a shadow rollout answered with {slot.role} {slot.version}, not live {live_version}")
    figures = router.shadow_figures(model) or {}
    report["shadow"] = {**{k: v for k, v in figures.items() if k != "version"}, **bounds.as_dict()}
    agreement = figures.get("agreement")
    print(
        f"shadow {entry['version']}: {figures.get('requests')} mirrored requests, agreement {agreement}, "
        f"p95 {figures.get('shadow_p95_ms')} ms vs live {figures.get('live_p95_ms')} ms"
    )
    why = shadow.judge(figures, bounds)
    if why is not None:
        raise CheckFailed(f"shadow {entry['version']} not promoted: {why}; bounds {bounds.as_dict()}; {back}")
