"""`reconcile --status-branch NAME`: the trail on its own branch, for a main that refuses the controller.

The remote is a bare repo whose pre-receive hook refuses any push to main that carries a commit
by the controller; the demo's story (a promotion, a blocked bump, a revert) must still work, and
status, history and audit read the trail from its branch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.adapters.git import GitRepo
from controller.app.cli import main
from controller.core.models import Phase
from controller.errors import GitError
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import Clone, git, make_release_repo

TRAIL = "releasectl/status"
HOOK = """#!/bin/sh
while read old new ref; do
  if [ "$ref" = "refs/heads/main" ]; then
    if [ "$old" = "0000000000000000000000000000000000000000" ]; then range="$new"; else range="$old..$new"; fi
    if git log --format=%ae "$range" | grep -qx 'releasectl@noreply.invalid'; then
      echo "main is protected: the controller may not push to it" >&2
      exit 1
    fi
  fi
done
"""


def copy_pin(model: str, source: str, target: str):  # type: ignore[no-untyped-def]
    def edit(clone: Clone) -> None:
        up = clone.read_pin(source, model)
        clone.write_pin(
            target, model, {**clone.read_pin(target, model), "version": up["version"], "training": up["training"]}
        )

    return edit


def test_the_demo_story_with_the_trail_on_its_own_branch(
    tmp_path: Path, fast: FastExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_release_repo(tmp_path / "repo")
    hook = repo.remote / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    main_before = git(repo.remote, "rev-parse", "main")

    # the same controller on main is refused by the hook: main is protected
    plain = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "plain"), fast, fast.compiler())
    with pytest.raises(GitError, match="main is protected: the controller may not push to it"):
        plain.settle(full=True)

    ctl = GitRepo.controller_clone(repo.url, tmp_path / "ctl", status_branch=TRAIL)
    rec = Reconciler(ctl, fast, fast.compiler())
    adopted = rec.settle(full=True)
    assert [o.phase for o in adopted.outcomes] == [Phase.DEPLOYED] * 9
    assert git(repo.remote, "rev-parse", "main") == main_before  # main is left to people
    assert {p.split("/")[0] for p in git(repo.remote, "ls-tree", "-r", "--name-only", TRAIL).split()} == {"status"}

    dana = repo.clone("dana")
    promotion = dana.merge_pr("promote", copy_pin("tumor-classifier", "dev", "staging"), "promote tumor to staging")
    (promoted,) = rec.settle().outcomes
    assert (promoted.action.environment, promoted.phase) == ("staging", Phase.DEPLOYED)
    dana.merge_pr("bump", copy_pin("digits-classifier", "dev", "production"), "digits 0.3.0 to production")
    (blocked,) = rec.settle().outcomes
    assert blocked.phase is Phase.BLOCKED and "staging has not Deployed spec" in blocked.reason
    dana.pull()
    dana.run("revert", "--no-edit", "-m", "1", promotion)
    dana.push()
    (back,) = rec.settle().outcomes
    assert (back.action.kind.value, back.phase, back.action.version) == ("rollback", Phase.DEPLOYED, "1.0.0")
    assert rec.settle().outcomes == []  # nothing left to say: the trail's own commits are not candidates
    assert git(repo.remote, "log", "--format=%ae", "main").count("releasectl@noreply.invalid") == 0
    trail_log = git(repo.remote, "log", "--format=%s", TRAIL).splitlines()
    assert len(trail_log) == 12 and all(s.startswith("status(") for s in trail_log)

    # status, history and audit read the trail from its branch
    dana.run("fetch", "-q", "origin")
    args = ["--repo", str(dana.path), "--status-branch", TRAIL]
    assert main(["status", *args, "--env", "staging", "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tumor-classifier"]["live"] == "1.0.0"
    assert main(["history", "tumor-classifier", "--env", "staging", *args, "--format", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [(h["kind"], h["version"], h["phase"]) for h in history] == [
        ("change", "1.0.0", ""),
        ("outcome", "1.0.0", "Deployed"),
        ("change", "1.1.0", ""),
        ("outcome", "1.1.0", "Deployed"),
        ("revert", "1.0.0", ""),
        ("outcome", "1.0.0", "Deployed"),
    ]
    assert main(["audit", *args, "--verify", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["breaks"] == [] and report["summary"]["rollbacks"] == 1

    # a restarted controller picks the trail up where it was
    again = Reconciler(
        GitRepo.controller_clone(repo.url, tmp_path / "ctl2", status_branch=TRAIL), fast, fast.compiler()
    )
    assert again.settle(full=True).outcomes == []


def test_status_branch_must_be_a_branch_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--repo", "file:///nowhere.git", "--status-branch", "main"]) == 2
    assert "the trail needs a branch of its own, not main" in capsys.readouterr().err
    assert main(["status", "--status-branch", "../x"]) == 2
    assert "--status-branch '../x': not a branch name" in capsys.readouterr().err


def test_retry_reads_the_outcome_from_the_status_branch(tmp_path: Path, fast: FastExecutor) -> None:
    from tests.fastexec import Behaviour

    repo = make_release_repo(tmp_path / "repo")
    rec = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "ctl", status_branch=TRAIL), fast, fast.compiler())
    rec.settle(full=True)
    fast.behaviour[("dev", "wine-classifier")] = Behaviour(fail_task="train", fail_message="node lost")
    dana = repo.clone("dana")

    def bump(clone: Clone) -> None:
        clone.write_pin("dev", "wine-classifier", {**clone.read_pin("dev", "wine-classifier"), "version": "2.2.0"})

    merge = dana.merge_pr("bump", bump, "wine 2.2.0")
    (failed,) = rec.settle().outcomes
    assert failed.phase is Phase.FAILED
    dana.pull()
    # main carries no status: without the flag there is no outcome to retry
    assert main(["retry", "wine-classifier", "--env", "dev", "--repo", str(dana.path)]) == 1
    missing = ["retry", "wine-classifier", "--env", "dev", "--repo", str(dana.path), "--status-branch", "other/trail"]
    assert main(missing) == 2
    assert main(["retry", "wine-classifier", "--env", "dev", "--repo", str(dana.path), "--status-branch", TRAIL]) == 0
    assert dana.run("show", "HEAD:environments/dev/wine-classifier.yaml").endswith(f"# releasectl retry 1: {merge}")
    fast.behaviour.clear()
    dana.push()
    (deployed,) = rec.settle().outcomes
    assert (deployed.phase, deployed.action.source_commit) == (Phase.DEPLOYED, dana.head())
