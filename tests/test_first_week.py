"""Issue 11, a new user's first week: each bug as it was found, through the public commands.

Workflows run on the real LocalExecutor with fast step functions (tests/fastexec.py), so that the
git side is exact and fast;
tests/test_first_week_e2e.py runs `reconcile`, a user recipe and the progress lines for real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from controller.adapters.git import GitRepo
from controller.app.cli import main
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from tests.fastexec import Behaviour, FastExecutor
from tests.support import ROOT, Clone, ReleaseRepo, git, make_release_repo

TUMOR_DEV = "environments/dev/tumor-classifier.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def controller(repo: ReleaseRepo, executor: FastExecutor) -> Reconciler:
    return Reconciler(GitRepo.controller_clone(repo.url, repo.root / "ctl"), executor, executor.compiler())


def rows(text: str) -> dict[tuple[str, str], list[str]]:
    """A table's rows by (first, second) column, split on runs of two or more spaces."""
    import re

    lines = text.splitlines()
    return {(c[0], c[1]): c for c in (re.split(r"\s{2,}", line.strip()) for line in lines[1:]) if len(c) > 1}


# -- 1. validate reads the files in front of you ---------------------------------------------------


def test_validate_reads_the_working_tree_not_head(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path)
    user = repo.clone("user")
    pin = user.path / TUMOR_DEV
    pin.write_text(pin.read_text().replace("version: 1.1.0", "versoin: 1.1.0"))  # not committed
    code, out, err = run(capsys, "validate", "--repo", str(user.path))
    assert code == 1
    assert out.splitlines() == [
        f"{TUMOR_DEV}: version: is required [required]",
        f"{TUMOR_DEV}: versoin: is not allowed here (allowed: apiVersion, deployment, evaluation, kind, model, "
        "monitoring, owner, training, version) [additionalProperties]",
    ]
    assert err == "9 pin(s) in 3 environment(s) of the working tree: 2 problem(s)\n"
    # --rev reads a commit: HEAD still has the good pin
    code, out, err = run(capsys, "validate", "--repo", str(user.path), "--rev", "HEAD")
    head = user.head()[:12]
    assert (code, out, err) == (0, "", f"9 pin(s) in 3 environment(s) of {head}: 0 problem(s)\n")
    assert git(user.path, "status", "--porcelain") == f"M {TUMOR_DEV}"  # nothing staged, nothing moved
    # a bare repository has no working tree: HEAD
    code, out, err = run(capsys, "validate", "--repo", str(repo.remote))
    assert (code, out, err) == (
        0,
        "",
        f"9 pin(s) in 3 environment(s) of {git(repo.remote, 'rev-parse', 'HEAD')[:12]}: 0 problem(s)\n",
    )


def test_validate_works_before_the_first_commit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    git(tmp_path, "init", "-q", "-b", "main", str(fresh))
    shutil.copytree(ROOT / "environments", fresh / "environments")
    code, out, err = run(capsys, "validate", "--repo", str(fresh))
    assert (code, out, err) == (0, "", "9 pin(s) in 3 environment(s) of the working tree: 0 problem(s)\n")
    (fresh / "environments/dev/Wine.yaml").write_text("{}\n")  # untracked files are read too
    code, out, _ = run(capsys, "validate", "--repo", str(fresh))
    assert (code, out) == (
        1,
        "environments/dev/Wine.yaml: file stem 'Wine' is not a DNS label (a-z, 0-9, '-') [dns-label]\n",
    )
    assert git(fresh, "status", "--porcelain") == "?? environments/"


# -- 2. reconcile and plan say what they decided ---------------------------------------------------


def test_plan_counts_only_live_pins_and_shows_failed_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path)
    executor = fast
    rec = controller(repo, executor)
    rec.settle(full=True)
    user = repo.clone("user")

    def change(clone: Clone) -> None:
        for env in ("dev", "staging", "production"):
            (clone.path / f"environments/{env}/wine-classifier.yaml").unlink()
        clone.write_pin("dev", "tumor-classifier", {**clone.read_pin("dev", "tumor-classifier"), "version": "1.5.0"})

    executor.behaviour[("dev", "tumor-classifier")] = Behaviour(gates_pass=False)
    user.merge_pr("week", change, "Drop wine; tumor 1.5.0 in dev")
    phases = {(o.action.environment, o.action.model): o.phase for o in rec.settle().outcomes}
    assert phases == {
        ("dev", "tumor-classifier"): Phase.FAILED,
        ("dev", "wine-classifier"): Phase.REMOVED,
        ("staging", "wine-classifier"): Phase.REMOVED,
        ("production", "wine-classifier"): Phase.REMOVED,
    }
    user.pull()
    code, out, _ = run(capsys, "plan", "--repo", str(user.path))
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["ACTION", "PIN", "VERSION", "COMMIT", "WHY"]
    assert lines[1].split()[:2] == ["failed", "dev/tumor-classifier"]
    assert lines[1].endswith("; live 1.1.0; change the pin to try again")  # the gate's reason, then what to do
    assert lines[2:] == ["5 pin(s) in sync."]  # six pin files, one of them Failed; deleted pins are not pins
    code, out, _ = run(capsys, "plan", "--repo", str(user.path), "--format", "json")
    plan = json.loads(out)
    assert plan["in_sync"] == 5
    assert [(a["environment"], a["model"], a["phase"]) for a in plan["attention"]] == [
        ("dev", "tumor-classifier", "Failed")
    ]


# -- 3 and 4. status: a Removed pin, and whose metrics ---------------------------------------------


@pytest.fixture
def week(tmp_path: Path, fast: FastExecutor) -> tuple[ReleaseRepo, Clone]:
    """Adopted with tumor at accuracy 0.937 in dev; then 1.2.0 fails its gate at 0.944; wine deleted in dev."""
    repo = make_release_repo(tmp_path)
    executor = fast
    executor.behaviour[("dev", "tumor-classifier")] = Behaviour(metrics={"accuracy": 0.937, "roc_auc": 0.96})
    rec = controller(repo, executor)
    rec.settle(full=True)
    user = repo.clone("user")

    def change(clone: Clone) -> None:
        (clone.path / "environments/dev/wine-classifier.yaml").unlink()
        clone.write_pin("dev", "tumor-classifier", {**clone.read_pin("dev", "tumor-classifier"), "version": "1.2.0"})

    executor.behaviour[("dev", "tumor-classifier")] = Behaviour(
        metrics={"accuracy": 0.944, "roc_auc": 0.97}, gates_pass=False
    )
    user.merge_pr("week", change, "Drop wine from dev; tumor 1.2.0")
    rec.settle()
    user.pull()
    return repo, user


def test_status_shows_a_removed_pin_as_removed(
    capsys: pytest.CaptureFixture[str], week: tuple[ReleaseRepo, Clone]
) -> None:
    _repo, user = week
    code, out, _ = run(capsys, "status", "--repo", str(user.path), "--env", "dev")
    assert code == 0
    assert rows(out)[("wine-classifier", "dev")][:5] == ["wine-classifier", "dev", "-", "-", "Removed"]
    code, out, _ = run(capsys, "status", "--repo", str(user.path), "--env", "dev", "--format", "json")
    wine = next(r for r in json.loads(out) if r["model"] == "wine-classifier")
    assert (wine["phase"], wine["desired"], wine["live"]) == ("Removed", None, None)


def test_status_says_whose_metrics_it_shows(
    capsys: pytest.CaptureFixture[str], week: tuple[ReleaseRepo, Clone]
) -> None:
    _repo, user = week
    code, out, _ = run(capsys, "status", "--repo", str(user.path), "--env", "dev")
    table = rows(out)
    tumor, digits = table[("tumor-classifier", "dev")], table[("digits-classifier", "dev")]
    assert code == 0
    assert tumor[:5] == ["tumor-classifier", "dev", "1.2.0", "1.1.0", "Failed"]
    assert tumor[6] == "1.2.0: accuracy=0.944, roc_auc=0.970"  # the failed candidate's, not live 1.1.0's
    assert digits[3:5] == ["0.3.0", "Deployed"] and digits[6] == "accuracy=0.970, roc_auc=0.990"  # the live one's
    code, out, _ = run(capsys, "status", "--repo", str(user.path), "--env", "dev", "--format", "json")
    row = next(r for r in json.loads(out) if r["model"] == "tumor-classifier")
    assert (row["live"], row["metrics_version"], row["metrics"]) == (
        "1.1.0",
        "1.2.0",
        {"accuracy": 0.944, "roc_auc": 0.97},
    )


# -- 5. a broken policy.yaml -----------------------------------------------------------------------


def test_a_broken_policy_is_a_check_that_said_no(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def breaks(seed: Path) -> None:
        policy = seed / "environments/policy.yaml"
        policy.write_text(policy.read_text().replace("requires: dev", "requires: qa"))

    repo = make_release_repo(tmp_path, edit=breaks)
    user = repo.clone("user")
    line = (
        "environments/policy.yaml: environments.staging.requires must name the environment before it in order "
        "[value_error]"
    )
    code, out, err = run(capsys, "status", "--repo", str(user.path))
    assert (code, out, err) == (1, "", f"error: {line}\n")
    code, out, err = run(capsys, "history", "tumor-classifier", "--repo", str(user.path))
    assert (code, out, err) == (1, "", f"error: {line}\n")
    code, out, err = run(
        capsys, "reconcile", "--repo", repo.url, "--home", str(tmp_path / "home"), "--executor", "local"
    )
    assert (code, out) == (1, "")
    assert err.count(line) == 1


# -- 6. rollback edge cases ------------------------------------------------------------------------


def test_rollback_refuses_a_pin_that_never_deployed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path)
    executor = fast
    rec = controller(repo, executor)
    rec.settle(full=True)
    user = repo.clone("user")
    pin = user.read_pin("dev", "tumor-classifier")
    wrong = {**pin["training"], "dataset": {"name": "breast-cancer", "sha256": "0" * 64}}
    executor.behaviour[("dev", "tumor-classifier")] = Behaviour(fail_task="validate-data", fail_message="bad digest")
    user.merge_pr(
        "b1", lambda c: c.write_pin("dev", "tumor-classifier", {**pin, "version": "1.2.0", "training": wrong}), "1.2.0"
    )
    assert [o.phase for o in rec.settle().outcomes] == [Phase.FAILED]
    executor.behaviour.pop(("dev", "tumor-classifier"))
    last = user.merge_pr("b2", lambda c: c.write_pin("dev", "tumor-classifier", {**pin, "version": "1.2.1"}), "1.2.1")
    assert [o.phase for o in rec.settle().outcomes] == [Phase.DEPLOYED]
    user.pull()
    head = user.head()
    code, out, err = run(capsys, "rollback", "tumor-classifier", "--env", "dev", "--repo", str(user.path))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {TUMOR_DEV} before {last[:12]} (tumor-classifier 1.2.0, spec sha256:")
    assert err.endswith(
        "never Deployed in dev, so restoring it is not a rollback (the controller would build it); "
        "change the pin in a PR instead\n"
    )
    assert user.head() == head
    # after a change back to 1.1.0, a rollback returns to 1.2.1, which did deploy: allowed, and said so
    user.merge_pr("b3", lambda c: c.write_pin("dev", "tumor-classifier", pin), "back to 1.1.0")
    assert [(o.phase, o.action.kind.value) for o in rec.settle().outcomes] == [(Phase.DEPLOYED, "rollback")]
    user.pull()
    code, out, err = run(
        capsys, "rollback", "tumor-classifier", "--env", "dev", "--repo", str(user.path), "--format", "json"
    )
    made = json.loads(out)
    assert code == 0 and made["ref"] == "main" and made["sha"] == user.head() and made["next_step"] == "git push"
    assert "; the controller redeploys 1.2.1 (sha256:" in made["summary"]
    assert made["summary"].endswith("…) without training")
    assert user.read_pin("dev", "tumor-classifier")["version"] == "1.2.1"


def test_rollback_refuses_an_environment_the_policy_does_not_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def qa(seed: Path) -> None:
        (seed / "environments/qa").mkdir()
        shutil.copy(seed / "environments/dev/wine-classifier.yaml", seed / "environments/qa/wine-quality.yaml")

    repo = make_release_repo(tmp_path, edit=qa)
    user = repo.clone("user")
    user.run("rm", "-q", "environments/qa/wine-quality.yaml")
    user.commit("Remove the stray qa pin")
    head = user.head()
    code, out, err = run(capsys, "rollback", "wine-quality", "--env", "qa", "--repo", str(user.path))
    assert (code, out, err) == (2, "", "error: unknown environment 'qa' (environments: dev, staging, production)\n")
    assert user.head() == head and not (user.path / "environments/qa/wine-quality.yaml").exists()


# -- 13. plan's VERSION and WHY ---------------------------------------------------------------------


def test_plan_shows_a_rejected_pins_version_and_why_a_deploy_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path)
    rec = controller(repo, fast)
    rec.settle(full=True)
    user = repo.clone("user")
    user.write_pin("dev", "wine-classifier", {**user.read_pin("dev", "wine-classifier"), "owner": "nobody"})
    user.write_pin("dev", "tumor-classifier", {**user.read_pin("dev", "tumor-classifier"), "version": "1.2.0"})
    sha = user.commit("two changes")
    code, out, _ = run(capsys, "plan", "--repo", str(user.path))
    table = rows(out.rsplit("\n", 2)[0])
    assert code == 1
    assert table[("deploy (train)", "dev/tumor-classifier")] == [
        "deploy (train)",
        "dev/tumor-classifier",
        "1.2.0",
        sha[:12],
        "the pin changed: 1.1.0 live -> 1.2.0; train it",
    ]
    reject = table[("reject", "dev/wine-classifier")]
    assert reject[:4] == ["reject", "dev/wine-classifier", "2.1.0", sha[:12]]
    assert reject[4].startswith(
        "environments/dev/wine-classifier.yaml: owner: 'nobody' is not a plain ASCII email address (name@domain.tld)"
    )


# -- 11. noise: one line per workflow state change -------------------------------------------------


def test_progress_prints_workflow_states_and_draws_steps_on_a_terminal_only() -> None:
    import io

    from controller.app.progress import Progress

    events = [  # the LocalExecutor's on_event lines (tests/test_first_week_e2e.py sees the real ones)
        "rc-dev-a-0123456789/validate-data: started (attempt 1)",
        "rc-dev-a-0123456789/validate-data: Succeeded in 0.12s",
        "rc-dev-a-0123456789/gates-failed: Skipped (when 'true == false' evaluated false)",
        "rc-dev-a-0123456789: Succeeded in 3.2s",
    ]
    for verbose, expected in (
        (False, ["  rc-dev-a-0123456789: Running", "  rc-dev-a-0123456789: Succeeded in 3.2s"]),
        (True, [f"  {e}" for e in events]),
    ):
        lines: list[str] = []
        progress = Progress(lines.append, verbose=verbose)
        for event in events:
            progress.event(event)
        assert lines == expected
    lines, terminal = [], io.StringIO()
    progress = Progress(lines.append, live=terminal)
    progress.log("dev/a 1.0.0: train (rc-dev-a-0123456789)")
    for event in events[:2]:
        progress.event(event)
    assert terminal.getvalue().endswith("\r\033[K  … 1 running: 0123456789 validate-data Succeeded in 0.12s")
    progress.event(events[3])
    progress.close()
    assert lines == ["dev/a 1.0.0: train (rc-dev-a-0123456789)", "  rc-dev-a-0123456789: Running", "  " + events[3]]
    assert terminal.getvalue().endswith("\r\033[K")


# -- 9. recipes from entry points: a broken one is left out, said once -----------------------------


@pytest.mark.parametrize(
    ("entry", "module", "why"),
    [
        ("broken = nowhere:thing", None, "ModuleNotFoundError: No module named 'nowhere'"),
        ("gradient-boosting = acme_clash:r", "acme_clash", "ValueError: a built-in recipe has this name"),
        ("other-name = acme_named:r", "acme_named", "ValueError: the entry point's name must be the recipe's name"),
        ("acme-list = acme_list:r", "acme_list", "TypeError: parameter 'depth' must be an identifier of type int"),
    ],
    ids=["import-fails", "shadows-a-builtin", "name-differs", "bad-param-type"],
)
def test_a_bad_recipe_entry_point_is_left_out_with_one_warning(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    entry: str,
    module: str | None,
    why: str,
) -> None:
    from workflows import recipes

    name = entry.split(" = ", maxsplit=1)[0]
    if module is not None:
        params = '{"depth": list}' if module == "acme_list" else "{}"
        recipe = "acme-list" if module == "acme_list" else "gradient-boosting" if module == "acme_clash" else "acme-x"
        (tmp_path / f"{module}.py").write_text(
            f"from workflows.recipes import Recipe\nr = Recipe({recipe!r}, {params}, lambda p, s: None)\n"
        )
    info = tmp_path / "acme_bad-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-bad\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[releasectl.recipes]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    recipes.registry(refresh=True)
    try:
        code, out, err = run(capsys, "recipes", "--format", "json")
    finally:
        monkeypatch.undo()
        recipes.registry(refresh=True)
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["gradient-boosting", "random-forest", "logistic-regression"]
    (line,) = err.splitlines()
    assert line.startswith(f"warning: recipe entry point {name} = {entry.split(' = ')[1]}: {why}")
