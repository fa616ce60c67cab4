"""`releasectl check --smoke`: the PR tier. Every pin a change touches, its workflow on a sample.

Place in the flow: before the controller, on a PR's checkout (or a person's clone). It reads the
repository and writes nothing to it: no commit, no ref, no working-tree file, no trail. For each pin
that differs between the base and HEAD it compiles the smoke variant of the pin's deploy workflow
(workflows/builders.smoke_manifest: the same validate-data, train and evaluate templates, a
seeded stratified sample of the rows, the recipe's cheap settings, nothing after evaluate) and
runs it on the in-process LocalExecutor in a temporary home, which is removed afterwards. The
verdicts are controller/core/smoke.py's.

The base: `--base REV` (default `origin/main`, else `main`) names the branch the change goes into;
the pins compared are those that differ between HEAD and the merge-base of REV and HEAD, as a
forge's PR diff (`git diff REV...HEAD`): a base branch that moved on since the PR branched adds
nothing, and on a forge's merge commit the merge-base is the base's tip.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.adapters.git import GitRepo
from controller.app.runtime import WARM_IMPORTS
from controller.core.models import Action, ActionKind, ModelPin
from controller.core.paths import ENV_ROOT, POLICY_PATH
from controller.core.pins import DesiredPin
from controller.core.planner import checked
from controller.core.smoke import PinCheck, SmokeReport, fold, invalid
from controller.errors import UsageError
from controller.loop.snapshot import SnapshotReader
from controller.ports import WorkflowRun

DEFAULT_BASES = ("origin/main", "main")
# What the steps' warm worker imports once: the controller's own list, less the deploy step (a
# smoke workflow ends after evaluate).
SMOKE_IMPORTS = tuple(m for m in WARM_IMPORTS if m != "workflows.steps.deploy")


@dataclass(frozen=True)
class SmokeOptions:
    fraction: float = 0.05
    min_per_class: int = 20
    seed: int = 0
    timeout_s: float = 300.0  # for all the pins' runs together
    max_parallel: int = 2


def resolve_base(repo: GitRepo, head: str, base: str | None) -> tuple[str, str]:
    """(the merge-base of the base branch and `head`, the name it came from); see the module docstring."""
    names = [base] if base else [ref for ref in DEFAULT_BASES if repo.ref_exists(ref)]
    if not names:
        raise UsageError(
            "no --base given and neither origin/main nor main exists here: name the branch the change goes into"
        )
    tip = repo.rev(names[0])
    found = repo.merge_base(tip, head)
    if found is None:
        raise UsageError(f"--base {names[0]}: it shares no history with {head[:12]}")
    return found, names[0]


def touched(repo: GitRepo, base: str, head: str) -> list[str]:
    """Paths of pin files (environments/<env>/<file>) that differ between base and head."""
    return sorted(
        p for p in repo.changed_paths(base, head) if p.startswith(ENV_ROOT) and p.count("/") == 2 and p != POLICY_PATH
    )


def _problems_by_path(lines: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path, line in lines:
        out.setdefault(path, []).append(line)
    return out


def check_smoke(
    repo: GitRepo,
    rev: str = "HEAD",
    base: str | None = None,
    options: SmokeOptions = SmokeOptions(),
    *,
    on_event: Callable[[str], None] | None = None,
) -> SmokeReport:
    """The smoke tier over the pins a change touches (see the module docstring)."""
    started = time.perf_counter()
    head = repo.rev(rev)
    base_sha, base_ref = resolve_base(repo, head, base)
    paths = touched(repo, base_sha, head)
    if not paths:
        return SmokeReport(base_sha, base_ref, head, seconds=time.perf_counter() - started)
    reader = SnapshotReader(repo)
    snap = reader.load(head)
    desired = dict(snap.desired)
    if snap.policy is not None:
        desired.update(checked(snap.desired, snap.recorded, snap.policy))
    by_path = {d.path: d for d in desired.values()}
    problems = _problems_by_path([(p.path, p.line()) for p in snap.problems])
    before = {d.path: d for d in SnapshotReader(repo).load(base_sha).desired.values()}
    checks: list[PinCheck] = []
    runnable: list[tuple[DesiredPin, DesiredPin | None]] = []
    removed: list[str] = []
    for path in paths:
        found = by_path.get(path)
        _, env, stem = path.split("/")
        model = stem.removesuffix(".yaml")
        if found is None:
            if path in problems:
                checks.append(invalid(path, env, model, "unknown", problems[path]))
            elif path not in snap.files and path.endswith(".yaml"):
                removed.append(path)
            continue
        if not found.valid or found.pin is None:
            lines = [p.line() for p in found.problems] or problems.get(path, [])
            checks.append(invalid(path, env, model, found.version, lines))
            continue
        runnable.append((found, before.get(path)))
    if snap.policy is None:  # a policy the change broke: no pin can be judged under it
        policy_lines = problems.get(POLICY_PATH, [f"{POLICY_PATH} is invalid"])
        checks += [invalid(d.path, d.environment, d.model, d.version, policy_lines) for d, _ in runnable]
        runnable = []
    checks += _run_all(runnable, options, on_event)
    order = {p: i for i, p in enumerate(paths)}
    checks.sort(key=lambda c: order.get(c.path, len(order)))
    return SmokeReport(base_sha, base_ref, head, tuple(checks), tuple(removed), time.perf_counter() - started)


def _cheap_pin(pin: ModelPin) -> ModelPin:
    from workflows.recipes import cheap_params

    params = cheap_params(pin.training.recipe, dict(pin.training.params))
    return pin.model_copy(update={"training": pin.training.model_copy(update={"params": params})})


def _reference(desired: DesiredPin, before: DesiredPin | None, catalog: Path) -> str:
    """The drift reference: the dataset the pin named at the base, when the change moves it.

    The full workflow compares with the live version's dataset; the smoke tier has no trail of its
    own, so it takes what the pin said before the change (a user's file is fetched into the
    temporary catalog first, checked against its sha256). None when the base had no such pin, the
    dataset's name changed, or the base's data cannot be read (then nothing is compared).
    """
    pin = desired.pin
    old = before.pin if before is not None and before.valid else None
    if pin is None or old is None:
        return ""
    now, then = pin.training.dataset, old.training.dataset
    if then.name != now.name or then.sha256 == now.sha256:
        return ""
    if then.uri:
        from workflows.datasets import load_pinned

        try:
            load_pinned(catalog.as_uri(), then.name, then.sha256, then.uri, then.format or "", then.target or "")
        except Exception:  # the base's data is gone or broken: not this change's to answer for
            return ""
    return then.sha256


def _run_all(
    runnable: list[tuple[DesiredPin, DesiredPin | None]],
    options: SmokeOptions,
    on_event: Callable[[str], None] | None,
) -> list[PinCheck]:
    if not runnable:
        return []
    from controller.adapters.local.executor import LocalExecutor
    from workflows.builders import smoke_manifest
    from workflows.sample import Sample
    from workflows.target import Target

    sample = Sample(options.fraction, options.min_per_class, options.seed).to_json()
    with tempfile.TemporaryDirectory(prefix="releasectl-smoke-") as tmp:
        root = Path(tmp)
        for sub in ("store", "data", "serving", "executor"):
            (root / sub).mkdir()
        step_s = max(30, int(options.timeout_s))
        target = Target(
            store_uri=(root / "store").as_uri(),
            data_uri=(root / "data").as_uri(),
            serving_uri=(root / "serving").as_uri(),
            step_deadline_s=step_s,
            workflow_deadline_s=step_s,
            retries=0,
        )
        submitted: list[tuple[str, PinCheck, ModelPin]] = []
        with LocalExecutor(
            root / "executor", max_parallel=options.max_parallel, preload=SMOKE_IMPORTS, on_event=on_event
        ) as executor:
            for desired, before in runnable:
                assert desired.pin is not None
                cheap = _cheap_pin(desired.pin)
                action = Action(
                    kind=ActionKind.DEPLOY,
                    environment=desired.environment,
                    model=desired.model,
                    version=desired.version,
                    source_commit=desired.source_commit,
                    spec_digest=desired.digest,
                    pin=cheap,
                )
                reference = _reference(desired, before, root / "data")
                base = PinCheck(
                    desired.path,
                    desired.environment,
                    desired.model,
                    desired.version,
                    "error",
                    params=dict(cheap.training.params),
                    reference=reference or None,
                )
                name = executor.submit(smoke_manifest(action, target, sample, reference_sha256=reference))
                submitted.append((name, base, desired.pin))
            deadline = time.monotonic() + options.timeout_s
            runs: dict[str, WorkflowRun] = {}
            for name, _, _ in submitted:
                runs[name] = executor.wait(name, max(0.0, deadline - time.monotonic()))
            return [
                fold(base, runs[name], list(pin.evaluation.gates), list(pin.evaluation.max_regression))
                for name, base, pin in submitted
            ]
