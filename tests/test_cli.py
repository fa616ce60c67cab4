"""The command line: outputs, formats and exit codes (0 ok, 1 a check said no, 2 usage, 3 runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.adapters.local.executor import LocalExecutor
from controller.app.cli import main
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import ROOT, Clone, ReleaseRepo, git, make_release_repo


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory: pytest.TempPathFactory, fast_engine: LocalExecutor) -> tuple[ReleaseRepo, Clone]:
    """A release repo after adoption and one promotion, and a user's clone of it."""
    repo = make_release_repo(tmp_path_factory.mktemp("cli"))
    fast = FastExecutor(fast_engine, repo.root / "fast")
    rec = Reconciler(GitRepo.controller_clone(repo.url, repo.root / "ctl"), fast, fast.compiler())
    rec.settle(full=True)
    user = repo.clone("user")

    def promote(clone: Clone) -> None:
        up = clone.read_pin("dev", "wine-classifier")
        clone.write_pin(
            "production",
            "wine-classifier",
            {**clone.read_pin("production", "wine-classifier"), "version": up["version"], "training": up["training"]},
        )

    user.merge_pr("promote-wine", promote, "Promote wine to production")
    rec.settle()
    user.pull()
    return repo, user


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok_and_with_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "validate", "--repo", str(ROOT))
    assert (code, out, err) == (0, "", "9 pin(s) in 3 environment(s): 0 problem(s)\n")

    def breaks(seed: Path) -> None:
        pin = seed / "environments/staging/wine-classifier.yaml"
        pin.write_text(pin.read_text().replace("seed: 3", "seed: three"))
        (seed / "environments/dev/Wine.yaml").write_text("{}\n")

    repo = make_release_repo(tmp_path, edit=breaks)
    clone = repo.clone("user")
    code, out, err = run(capsys, "validate", "--repo", str(clone.path))
    assert code == 1
    assert out.splitlines() == [
        "environments/dev/Wine.yaml: file stem 'Wine' is not a DNS label (a-z, 0-9, '-') [dns-label]",
        "environments/staging/wine-classifier.yaml: training.params.seed: 'three' is not of type int [recipe-params]",
    ]
    assert err == "9 pin(s) in 3 environment(s): 2 problem(s)\n"
    code, out, _ = run(capsys, "validate", "--repo", str(clone.path), "--format", "json")
    assert code == 1 and [p["rule"] for p in json.loads(out)["problems"]] == ["dns-label", "recipe-params"]

    # a PR check reports only what the change touched
    clone.write(
        "environments/dev/tumor-classifier.yaml",
        (clone.path / "environments/dev/tumor-classifier.yaml").read_text().replace("1.1.0", "1.1"),
    )
    clone.commit("break tumor")
    code, out, _ = run(capsys, "validate", "--repo", str(clone.path), "--base", "HEAD~1")
    assert code == 1
    assert out.splitlines() == [
        "environments/dev/tumor-classifier.yaml: version: 1.1 was read as a number, not "
        "text: quote it in the YAML [type]"
    ]


def test_plan_text_and_json(capsys: pytest.CaptureFixture[str], reconciled: tuple[ReleaseRepo, Clone]) -> None:
    _repo, user = reconciled
    code, out, _ = run(capsys, "plan", "--repo", str(user.path))
    assert (code, out) == (0, "Nothing to do: 9 pin(s) in sync.\n")
    user.run("checkout", "-q", "-b", "pr-bump-prod-digits")
    dev = user.read_pin("dev", "digits-classifier")
    user.write_pin(
        "production",
        "digits-classifier",
        {**user.read_pin("production", "digits-classifier"), "version": dev["version"], "training": dev["training"]},
    )
    sha = user.commit("bump digits in production")
    try:
        code, out, _ = run(capsys, "plan", "--repo", str(user.path), "--format", "json")
        plan = json.loads(out)
        assert code == 1  # a blocked plan is a check that said no
        assert [
            (a["kind"], a["environment"], a["model"], a["version"], a["source_commit"]) for a in plan["actions"]
        ] == [("block", "production", "digits-classifier", "0.3.0", sha)]
        assert plan["actions"][0]["reason"].startswith("staging has not Deployed spec sha256:")
        assert plan["in_sync"] == 8
        code, out, _ = run(capsys, "plan", "--repo", str(user.path))
        assert out.splitlines()[0].split() == ["ACTION", "PIN", "VERSION", "COMMIT", "WHY"]
        assert out.splitlines()[1].split()[:4] == ["block", "production/digits-classifier", "0.3.0", sha[:12]]
    finally:
        user.run("checkout", "-q", "main")


def test_status_table_and_json(capsys: pytest.CaptureFixture[str], reconciled: tuple[ReleaseRepo, Clone]) -> None:
    _repo, user = reconciled
    code, out, _ = run(capsys, "status", "--repo", str(user.path), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 9
    wine = next(r for r in rows if (r["environment"], r["model"]) == ("production", "wine-classifier"))
    assert (wine["desired"], wine["live"], wine["phase"], wine["in_sync"]) == ("2.1.0", "2.1.0", "Deployed", True)
    code, out, _ = run(capsys, "status", "--repo", str(user.path), "--env", "production")
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["MODEL", "ENV", "DESIRED", "LIVE", "PHASE"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["digits-classifier", "production", "0.2.0", "0.2.0", "Deployed"],
        ["tumor-classifier", "production", "1.0.0", "1.0.0", "Deployed"],
        ["wine-classifier", "production", "2.1.0", "2.1.0", "Deployed"],
    ]
    code, _, err = run(capsys, "status", "--repo", str(user.path), "--env", "qa")
    assert code == 2 and err == "error: unknown environment 'qa' (environments: dev, staging, production)\n"


def test_history_json(capsys: pytest.CaptureFixture[str], reconciled: tuple[ReleaseRepo, Clone]) -> None:
    _repo, user = reconciled
    code, out, _ = run(
        capsys, "history", "wine-classifier", "--env", "production", "--repo", str(user.path), "--format", "json"
    )
    rows = json.loads(out)
    assert code == 0
    assert [(r["kind"], r["version"], r["phase"]) for r in rows] == [
        ("change", "2.0.0", ""),
        ("outcome", "2.0.0", "Deployed"),
        ("change", "2.1.0", ""),
        ("outcome", "2.1.0", "Deployed"),
    ]
    assert rows[3]["source_commit"] == rows[2]["commit"]
    assert rows[3]["author"] == "releasectl@noreply.invalid"


def test_rollback_and_promote_make_commits(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path)
    user = repo.clone("user")
    code, out, err = run(
        capsys, "promote", "tumor-classifier", "--from", "dev", "--to", "staging", "--repo", str(user.path)
    )
    assert code == 0 and "push the branch and open a PR" in err
    sha = out.split()[0]
    assert git(user.path, "rev-parse", "promote/tumor-classifier-staging-1.1.0") == sha
    promoted = yaml.safe_load(git(user.path, "show", f"{sha}:environments/staging/tumor-classifier.yaml"))
    dev = user.read_pin("dev", "tumor-classifier")
    staging = user.read_pin("staging", "tumor-classifier")
    assert promoted["version"] == "1.1.0" and promoted["training"] == dev["training"]
    assert promoted["evaluation"] == staging["evaluation"] and promoted["deployment"] == staging["deployment"]
    assert git(user.path, "diff", "--name-only", "main", sha) == "environments/staging/tumor-classifier.yaml"

    # rollback: a revert of the last change of that pin, limited to that file
    user.run("merge", "-q", "--no-ff", "promote/tumor-classifier-staging-1.1.0", "-m", "Merge promotion")
    code, out, _ = run(capsys, "rollback", "tumor-classifier", "--env", "staging", "--repo", str(user.path))
    assert code == 0
    assert user.read_pin("staging", "tumor-classifier") == staging
    assert git(user.path, "log", "-1", "--format=%s").startswith('Revert "Merge promotion"')
    code, _, err = run(capsys, "rollback", "tumor-classifier", "--env", "qa", "--repo", str(user.path))
    assert code == 2 and err.startswith("error: environments/qa/tumor-classifier.yaml has no history at HEAD")


def test_usage_and_runtime_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "history")
    assert code == 2 and "the following arguments are required: model" in err
    code, _, err = run(capsys, "status", "--repo", str(tmp_path))
    assert (code, err) == (2, f"error: {tmp_path}: not a git repository\n")
    code, _, err = run(
        capsys, "reconcile", "--repo", (tmp_path / "missing.git").as_uri(), "--home", str(tmp_path / "home")
    )
    assert code == 3 and err.startswith("error: fetch from origin failed: fatal: ") and err.count("\n") == 1


def test_python_dash_m_controller_is_the_same_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "controller", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "releasectl 0.1.0"
