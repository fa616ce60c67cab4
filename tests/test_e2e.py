"""End to end with real parts: git remotes, the LocalExecutor running compiled Argo manifests,
real scikit-learn training, skops artifacts and the local serving target.

One release repo is adopted once per module (real training of six versions); each test then
changes a different model, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.app.runtime import Home, compiler, local_executor
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from controller.ports import OMITTED, SKIPPED, SUCCEEDED
from tests.support import Clone, ReleaseRepo, git, make_release_repo
from workflows.serving import Router

pytestmark = pytest.mark.slow


class Setup:
    def __init__(self, root: Path) -> None:
        self.repo: ReleaseRepo = make_release_repo(root)
        self.home = Home(root / "home")
        self.executor: Any = local_executor(self.home)
        self.lines: list[str] = []
        self.rec = Reconciler(
            GitRepo.controller_clone(self.repo.url, root / "ctl"),
            self.executor,
            compiler(self.home),
            log=lambda line, **_fields: self.lines.append(line),
        )
        self.first = self.rec.settle(full=True)
        self.user: Clone = self.repo.clone("user")

    def status(self, env: str, model: str) -> dict[str, Any]:
        return yaml.safe_load(git(self.repo.remote, "show", f"main:status/{env}/{model}.yaml"))

    def tasks(self, name: str) -> dict[str, str]:
        return {task: node.phase for task, node in self.executor.poll(name).nodes.items()}

    def bump(self, env: str, model: str, **changes: Any) -> str:
        def edit(clone: Clone) -> None:
            doc = clone.read_pin(env, model)
            for key, value in changes.items():
                if key == "gates":
                    doc["evaluation"]["gates"] = value
                else:
                    doc[key] = value
            clone.write_pin(env, model, doc)

        return self.user.merge_pr(f"bump-{env}-{model}-{len(self.lines)}", edit, f"bump {model} in {env}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = Setup(tmp_path_factory.mktemp("e2e"))
    yield s
    s.executor.close()


def test_adoption_trains_each_version_once_with_real_metrics(setup: Setup) -> None:
    outcomes = setup.first.outcomes
    assert [o.phase for o in outcomes] == [Phase.DEPLOYED] * 9, [o.reason for o in outcomes]
    trained = [o for o in outcomes if o.action.trains]
    assert sorted((o.action.environment, o.action.model) for o in trained) == [
        ("dev", "digits-classifier"),
        ("dev", "tumor-classifier"),
        ("dev", "wine-classifier"),
        ("production", "wine-classifier"),
        ("staging", "digits-classifier"),
        ("staging", "tumor-classifier"),
    ]
    for outcome in outcomes:
        assert set(outcome.metrics) >= {"accuracy", "roc_auc", "f1_macro", "p95_latency_ms"}
        assert 0.85 <= outcome.metrics["accuracy"] <= 1.0
        assert all(g.passed for g in outcome.gates) and outcome.gates
    staging, production = setup.status("staging", "tumor-classifier"), setup.status("production", "tumor-classifier")
    assert staging["live"]["artifact"] == production["live"]["artifact"]
    store = setup.home.store / "sha256" / (staging["live"]["artifact"].removeprefix("sha256:") + ".skops")
    assert store.is_file() and store.read_bytes()[:2] == b"PK"  # a skops zip, not a pickle
    # the production canary went 10% -> 50% -> 100% before going live
    report = next(o for o in outcomes if o.action.key == ("production", "tumor-classifier")).details["deploy"]
    assert report["strategy"] == "canary" and [s["weight"] for s in report["steps"]] == [10, 50, 100]


def test_a_failing_gate_is_failed_and_the_previous_version_keeps_serving(setup: Setup) -> None:
    before = setup.status("dev", "tumor-classifier")["live"]
    setup.bump("dev", "tumor-classifier", version="1.2.0", gates={"roc_auc": ">= 0.9999", "accuracy": ">= 0.5"})
    (outcome,) = setup.rec.settle().outcomes
    assert outcome.phase is Phase.FAILED
    value = outcome.metrics["roc_auc"]
    assert outcome.reason == f"gate roc_auc >= 0.9999 failed with {value:.4g}"
    status = setup.status("dev", "tumor-classifier")
    assert status["phase"] == "Failed" and status["live"] == before
    body = git(setup.repo.remote, "log", "-1", "--format=%B", "main")
    assert f"  gate roc_auc: {value:.4g} >= 0.9999 FAILED" in body
    assert "  gate accuracy:" in body and "passed" in body
    assert setup.tasks(outcome.workflow.name) == {  # type: ignore[union-attr]
        "validate-data": SUCCEEDED,
        "train": SUCCEEDED,
        "evaluate": SUCCEEDED,
        "deploy": SKIPPED,
        "gates-failed": "Failed",
    }
    router = Router(setup.home.serving, setup.home.store, "dev", seed=1)
    predictions, slot = router.predict("tumor-classifier", [[0.0] * 30])
    assert slot.version == "1.1.0" and predictions in ([0], [1])


def test_a_tampered_dataset_fails_validation_before_training(setup: Setup) -> None:
    pin = setup.user.read_pin("dev", "wine-classifier")
    snapshot = setup.home.data / "wine" / f"{pin['training']['dataset']['sha256']}.csv"
    original = snapshot.read_bytes()
    snapshot.write_bytes(original.replace(b"\n1", b"\n2", 1))
    try:
        setup.bump("dev", "wine-classifier", version="2.2.0")
        (outcome,) = setup.rec.settle().outcomes
    finally:
        snapshot.write_bytes(original)
    assert outcome.phase is Phase.FAILED
    assert outcome.reason.startswith("validate-data: dataset wine: snapshot file sha256 ")
    assert "does not match the pin's cd80158fad3d" in outcome.reason
    assert setup.tasks(outcome.workflow.name) == {  # type: ignore[union-attr]
        "validate-data": "Failed",
        "train": OMITTED,
        "evaluate": OMITTED,
        "deploy": OMITTED,
        "gates-failed": OMITTED,
    }
    assert setup.status("dev", "wine-classifier")["live"]["version"] == "2.1.0"


def test_revert_rolls_back_without_training(setup: Setup) -> None:
    old = setup.status("staging", "digits-classifier")["live"]
    merge = setup.bump(
        "staging",
        "digits-classifier",
        version="0.3.0",
        training=setup.user.read_pin("dev", "digits-classifier")["training"],
    )
    (promoted,) = setup.rec.settle().outcomes
    assert promoted.phase is Phase.DEPLOYED and not promoted.action.trains
    assert set(setup.tasks(promoted.workflow.name)) == {  # type: ignore[union-attr]
        "validate-data",
        "evaluate",
        "deploy",
        "gates-failed",
    }
    setup.user.pull()
    setup.user.run("revert", "--no-edit", "-m", "1", merge)
    setup.user.push()
    (rolled,) = setup.rec.settle().outcomes
    assert (rolled.phase, rolled.action.kind.value, rolled.artifact) == (Phase.DEPLOYED, "rollback", old["artifact"])
    assert setup.tasks(rolled.workflow.name) == {"deploy": SUCCEEDED}  # type: ignore[union-attr]
    state = json.loads((setup.home.serving / "staging" / "digits-classifier.json").read_text())
    assert state["live"]["version"] == "0.2.0" and state["live"]["artifact"] == old["artifact"]


def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    from controller.app.demo import run_demo

    lines: list[str] = []
    assert run_demo(workdir=str(tmp_path / "demo"), out=lines.append) == 0
    text = "\n".join(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("MODEL") and "ACCURACY" in line)
    rows = [line.split() for line in lines[header].splitlines()[1:]]
    assert len(rows) == 9  # a metrics row for every model and environment
    assert {(r[0], r[1]) for r in rows} == {
        (m, e)
        for m in ("tumor-classifier", "wine-classifier", "digits-classifier")
        for e in ("dev", "staging", "production")
    }
    for row in rows:
        assert row[3] == "Deployed" and 0.85 <= float(row[4]) <= 1.0 and 0.9 <= float(row[5]) <= 1.0
    assert "production/digits-classifier Blocked: staging has not Deployed spec" in text
    assert "staging/tumor-classifier 1.0.0 Deployed (rollback, no training;" in text
    assert '"model_version": "1.0.0"' in text
    # issue 11: one line per workflow state change, no step lines without -v
    assert re.search(r"^  rc-dev-tumor-classifier-[0-9a-f]{10}: Running$", text, re.M)
    assert not re.search(r"^ +rc-[-a-z0-9]+/(validate-data|train|evaluate|deploy|gates-failed): ", text, re.M)

    from controller.adapters.git import GitRepo
    from controller.app.audit import audit

    report = audit(GitRepo(tmp_path / "demo" / "releases.git"), "main", verify=True)
    assert report.breaks == []  # the demo's whole history verifies
    assert (report.summary.deploys, report.summary.rollbacks) == (2, 1)


def test_reconcile_once_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = make_release_repo(tmp_path)
    key = tmp_path / "controller_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    command = [
        sys.executable,
        "-m",
        "controller",
        "reconcile",
        "--repo",
        repo.url,
        "--once",
        "--home",
        str(tmp_path / "home"),
        "--signing-key",
        str(key),
        "--format",
        "json",
    ]
    first = subprocess.run([*command, "-v"], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert [o["phase"] for o in result["outcomes"]] == ["Deployed"] * 9
    # -v: the steps that ran in the local engine, as they ran, each workflow ending in one line
    ended = re.findall(r"^step (rc-[a-z0-9-]+): Succeeded in [0-9.]+s$", first.stderr, re.MULTILINE)
    submitted = re.findall(r": submitted [a-z]+ \((rc-[a-z0-9-]+)\)$", first.stderr, re.MULTILINE)
    assert len(submitted) == 9 and sorted(ended) == sorted(submitted)
    for name in ended:
        assert f"step {name}/deploy: started (attempt 1)\n" in first.stderr
    assert result["published"] == git(repo.remote, "rev-parse", "main")
    recorded = [int(n) for n in re.findall(r"^recorded (\d+) outcome\(s\); pushed ", first.stderr, re.MULTILINE)]
    assert sum(recorded) == 9  # over the passes that --once ran until every run it started was recorded
    second = subprocess.run(command[:-2], capture_output=True, text=True, check=False)
    head = result["published"][:12]  # issue 11: the pass says what it found, on stdout
    assert (second.returncode, second.stdout) == (0, f"nothing new to record at {head}\nevery pin is live as desired\n")
    assert git(repo.remote, "rev-parse", "main") == result["published"]
    signers = tmp_path / "allowed_signers"  # every status commit verifies offline against the controller's key
    signers.write_text(f'releasectl@noreply.invalid namespaces="git" {(tmp_path / "controller_key.pub").read_text()}')
    verdicts = git(repo.remote, "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}", "log",
                   "--format=%G? %GS", "main", "--", "status")  # fmt: skip
    assert verdicts.splitlines() == ["G releasectl@noreply.invalid"] * 9


def test_releasectl_serve_answers_predictions_for_the_live_version(setup: Setup) -> None:
    import subprocess
    import sys
    import urllib.request

    from sklearn.datasets import load_wine

    command = [
        sys.executable,
        "-m",
        "controller",
        "serve",
        "--env",
        "production",
        "--home",
        str(setup.home.root),
        "--port",
        "0",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("serving environment production at http://127.0.0.1:"), banner
        url = banner.split(" at ", 1)[1].split(" ", 1)[0]
        body = json.dumps({"instances": load_wine().data[:3].tolist()}).encode()
        request = urllib.request.Request(
            f"{url}/v1/models/wine-classifier:predict", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # the first request loads the model
            answer = json.loads(response.read())
        live = setup.status("production", "wine-classifier")["live"]["version"]
        assert answer["model_version"] == live and len(answer["predictions"]) == 3
        assert set(answer["predictions"]) <= {0, 1, 2}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_shadow_rollout_records_its_agreement_in_the_trail(setup: Setup) -> None:
    """dev digits-classifier 0.4.0 by shadow: the same recipe, data and seed, and a max_iter the solver
    never reaches (it converges in 29 iterations), train the same model in other bytes (training is
    deterministic: with the same params it would be the same artifact, already live), so the mirrored
    answers agree exactly, and the trail says so."""
    before = setup.status("dev", "digits-classifier")["live"]
    shadow = {"min_requests": 100, "min_agreement": 0.99, "max_latency_ratio": 50}
    setup.user.pull()
    training = setup.user.read_pin("dev", "digits-classifier")["training"]
    training["params"] = {**training["params"], "max_iter": training["params"]["max_iter"] + 1}
    setup.bump(
        "dev",
        "digits-classifier",
        version="0.4.0",
        training=training,
        deployment={"strategy": "shadow", "shadow": shadow},
    )
    (outcome,) = setup.rec.settle().outcomes
    assert outcome.phase is Phase.DEPLOYED, outcome.reason
    status = setup.status("dev", "digits-classifier")
    assert status["live"]["version"] == "0.4.0" and status["deployed"][1]["version"] == before["version"]
    figures = status["evidence"]["shadow"]
    assert (figures["requests"], figures["agreement"]) == (100, 1.0)
    assert (figures["min_requests"], figures["min_agreement"], figures["max_latency_ratio"]) == (100, 0.99, 50)
    assert figures["live_p95_ms"] > 0 and figures["shadow_p95_ms"] > 0
    state = json.loads((setup.home.serving / "dev" / "digits-classifier.json").read_text())
    assert "shadow" not in state and state["live"]["version"] == "0.4.0"


def test_drift_after_real_serving_proposes_retraining_on_a_branch(setup: Setup) -> None:
    """`releasectl serve` answers shifted inputs (and is stopped with SIGTERM, which writes its sample);
    `releasectl drift` compares them with the training data the controller recorded for the live
    version and pushes a branch that bumps the dev pin; main is untouched."""
    import subprocess
    import sys
    import urllib.request

    import numpy as np
    from sklearn.datasets import load_wine

    from controller.app.cli import main
    from workflows.sampling import read_sample

    earlier = read_sample(setup.home.serving, "production", "wine-classifier")  # another test may have served
    served = (earlier["seen"] if earlier else 0) + 300
    command = [sys.executable, "-m", "controller", "serve", "--env", "production", "--home", str(setup.home.root)]
    proc = subprocess.Popen([*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows = np.asarray(load_wine().data, dtype=np.float64)[np.random.default_rng(4).integers(0, 178, size=300)]
    rows[:, 0] += 2.0  # alcohol
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(" at ", 1)[1].split(" ", 1)[0]
        for start in range(0, len(rows), 30):
            body = json.dumps({"instances": rows[start : start + 30].tolist()}).encode()
            request = urllib.request.Request(
                f"{url}/v1/models/wine-classifier:predict", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    main_before = git(setup.repo.remote, "rev-parse", "main")
    code = main(["drift", "--env", "production", "--model", "wine-classifier", "--repo", str(setup.user.path),
                 "--home", str(setup.home.root), "--no-branch", "--format", "json"])  # fmt: skip
    assert code == 1
    code = main(["drift", "--env", "production", "--model", "wine-classifier", "--repo", str(setup.user.path),
                 "--home", str(setup.home.root)])  # fmt: skip
    assert code == 1
    branches = git(setup.repo.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/releasectl/drift/")
    (branch,) = branches.split()
    body = git(setup.repo.remote, "log", "-1", "--format=%B", branch)
    assert re.search(r"\n  alcohol +psi [0-9.]+  ks [0-9.]+\n", body), body
    assert f"Samples: {served} rows in the window (of {served} served since the sample began)" in body
    live = setup.status("production", "wine-classifier")["live"]
    assert f"Reference: wine sha256 {live['dataset_sha256']}" in body
    assert "The dataset snapshot is unchanged" in body  # the catalog has no newer wine snapshot
    assert git(setup.repo.remote, "diff", "--name-only", "main", branch) == "environments/dev/wine-classifier.yaml"
    assert git(setup.repo.remote, "rev-parse", "main") == main_before


def test_a_shadow_that_disagrees_too_often_is_failed_with_its_figures(setup: Setup) -> None:
    """dev digits-classifier retrained with another C: its answers differ on some mirrored rows,
    more than the pin's bound allows, so the outcome is Failed, the figures in the reason, and the
    version that was live keeps serving."""
    before = setup.status("dev", "digits-classifier")["live"]
    doc = setup.user.read_pin("dev", "digits-classifier")
    shadow = {"strategy": "shadow", "shadow": {"min_requests": 100, "min_agreement": 0.9999}}
    params = {**doc["training"]["params"], "C": 0.002}
    evaluation = {**doc["evaluation"], "max_regression": {}}  # judged by the shadow, not the regression check
    setup.bump("dev", "digits-classifier", version="0.9.0", deployment=shadow, evaluation=evaluation,
               training={**doc["training"], "params": params})  # fmt: skip
    outcomes = setup.rec.settle().outcomes
    (outcome,) = [o for o in outcomes if o.action.key == ("dev", "digits-classifier")]
    assert outcome.phase is Phase.FAILED, outcome.reason
    assert re.fullmatch(
        r"deploy: shadow 0\.9\.0 not promoted: agreement 0\.\d{4} < min_agreement 0\.9999 over 100 mirrored "
        r"requests \(100 rows\); bounds \{'min_requests': 100, 'min_agreement': 0\.9999\}; "
        + re.escape(before["version"])
        + " kept serving",
        outcome.reason,
    ), outcome.reason
    status = setup.status("dev", "digits-classifier")
    assert status["phase"] == "Failed" and status["reason"] == outcome.reason and status["live"] == before
    figures = status["evidence"]["shadow"]  # the figures of the no are evidence too, not only words
    assert (figures["requests"], figures["min_requests"], figures["min_agreement"]) == (100, 100, 0.9999)
    assert f"agreement {figures['agreement']:.4f} < min_agreement" in outcome.reason
    state = json.loads((setup.home.serving / "dev" / "digits-classifier.json").read_text())
    assert "shadow" not in state and state["live"]["version"] == before["version"]
