"""Policy evidence read from real commits: Approved-by trailers and ssh-signed merges."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from controller.adapters.git import GitRepo
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import REVIEWER, Clone, make_release_repo


def _keys(tmp: Path) -> tuple[Path, str]:
    key = tmp / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana", "-f", str(key)], check=True)
    public = (tmp / "signing_key.pub").read_text().strip()
    return key, f'dana@example.com namespaces="git" {public}\n'


def test_approvals_and_signatures_gate_changes(tmp_path: Path, fast: FastExecutor) -> None:
    key, signers = _keys(tmp_path)

    def guarded(seed: Path) -> None:
        policy = yaml.safe_load((seed / "environments/policy.yaml").read_text())
        policy["environments"]["staging"]["require_signed"] = True
        policy["environments"]["production"]["approvals"] = {"min": 1, "from": [REVIEWER[1]]}
        (seed / "environments/policy.yaml").write_text(yaml.safe_dump(policy))
        (seed / "environments/allowed_signers").write_text(signers)

    repo = make_release_repo(tmp_path / "repo", edit=guarded)
    rec = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "ctl"), fast, fast.compiler())
    assert len(rec.settle(full=True).outcomes) == 9  # adoption needs no approvals
    user = repo.clone("user")

    def promote(model: str, source: str, target: str) -> object:
        def edit(clone: Clone) -> None:
            up = clone.read_pin(source, model)
            clone.write_pin(
                target, model, {**clone.read_pin(target, model), "version": up["version"], "training": up["training"]}
            )

        return edit

    # staging requires a signature that verifies against environments/allowed_signers
    user.merge_pr("p1", promote("tumor-classifier", "dev", "staging"), "unsigned promotion")  # type: ignore[arg-type]
    (blocked,) = rec.settle().outcomes
    assert blocked.phase is Phase.BLOCKED
    assert "has no signature that verifies against environments/allowed_signers" in blocked.reason
    user.merge_pr("p2", lambda c: c.write("environments/staging/NOTES.md", "signed\n"), "touch", sign_with=key)
    user.merge_pr(
        "p3",
        promote("digits-classifier", "dev", "staging"),
        "signed promotion",  # type: ignore[arg-type]
        sign_with=key,
    )
    (signed,) = rec.settle().outcomes
    assert (signed.action.model, signed.phase) == ("digits-classifier", Phase.DEPLOYED)

    # production needs an Approved-by trailer from an allowed reviewer who is not the author
    unapproved = user.merge_pr("p4", promote("wine-classifier", "staging", "production"), "no approval")  # type: ignore[arg-type]
    (waiting,) = rec.settle().outcomes
    assert waiting.phase is Phase.BLOCKED
    assert waiting.reason == (
        "production needs 1 approval(s) from rui@example.com as Approved-by trailers on the "
        "merging commit, not counting its author; has 0 (none)"
    )
    user.run("checkout", "-q", "main")
    user.pull()
    user.run("revert", "--no-edit", "-m", "1", unapproved)
    user.push()
    assert [o.phase for o in rec.settle().outcomes] == [Phase.DEPLOYED]  # back to what it ran: a rollback
    user.merge_pr(
        "p5",
        promote("wine-classifier", "staging", "production"),
        "approved",  # type: ignore[arg-type]
        approvers=(f"{REVIEWER[0]} <{REVIEWER[1]}>",),
    )
    (approved,) = rec.settle().outcomes
    assert (approved.action.model, approved.action.environment, approved.phase) == (
        "wine-classifier",
        "production",
        Phase.DEPLOYED,
    )
