"""Policy evidence read from real commits: ssh-signed merges and approvals tied to identities.

Real ssh keys made here (ssh-keygen), real signatures (gpg.format=ssh), real pushes; approvals
are `releasectl approve` commits, made by the approver in their own clone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.app.cli import main
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import REVIEWER, USER, Clone, ReleaseRepo, make_release_repo

KIM = ("Kim Approver", "kim@example.com")


def keygen(tmp: Path, name: str) -> tuple[Path, str]:
    key = tmp / f"{name}_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (tmp / f"{name}_key.pub").read_text().strip()


def signing(clone: Clone, key: Path | None) -> Clone:
    """Make the clone's git sign every commit with `key` (or stop signing)."""
    if key is None:
        clone.run("config", "commit.gpgSign", "false")
    else:
        clone.run("config", "gpg.format", "ssh")
        clone.run("config", "user.signingKey", str(key))
        clone.run("config", "commit.gpgSign", "true")
    return clone


def promote(model: str, source: str, target: str):  # type: ignore[no-untyped-def]
    def edit(clone: Clone) -> None:
        up = clone.read_pin(source, model)
        clone.write_pin(
            target, model, {**clone.read_pin(target, model), "version": up["version"], "training": up["training"]}
        )

    return edit


def approve(clone: Clone, model: str, env: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> str:
    clone.pull()
    assert main(["approve", model, "--env", env, "--repo", str(clone.path), *extra]) == 0
    sha = capsys.readouterr().out.split()[0]
    clone.push()
    return sha


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    made = {who: keygen(tmp_path, who) for who in ("dana", "rui", "kim")}
    return {who: key for who, (key, _) in made.items()} | {
        "signers": _signers(tmp_path, {f"{who}@example.com": pub for who, (_, pub) in made.items()})
    }


def _signers(tmp: Path, by_email: dict[str, str]) -> Path:
    path = tmp / "allowed_signers"
    path.write_text("".join(f'{email} namespaces="git" {pub}\n' for email, pub in by_email.items()))
    return path


def guarded_repo(tmp_path: Path, keys: dict[str, Path], fast: FastExecutor) -> tuple[ReleaseRepo, Reconciler]:
    def guarded(seed: Path) -> None:
        policy = yaml.safe_load((seed / "environments/policy.yaml").read_text())
        policy["environments"]["staging"]["require_signed"] = True
        policy["environments"]["production"]["approvals"] = {"min": 1, "from": [REVIEWER[1]]}
        policy["environments"]["production"]["require_signed"] = True
        (seed / "environments/policy.yaml").write_text(yaml.safe_dump(policy))
        (seed / "environments/allowed_signers").write_text(keys["signers"].read_text())

    repo = make_release_repo(tmp_path / "repo", edit=guarded)
    rec = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "ctl"), fast, fast.compiler())
    assert len(rec.settle(full=True).outcomes) == 9  # adoption needs no approvals
    return repo, rec


def test_unsigned_changes_are_blocked_where_signatures_are_required(
    tmp_path: Path, keys: dict[str, Path], fast: FastExecutor
) -> None:
    repo, rec = guarded_repo(tmp_path, keys, fast)
    user = repo.clone("user")
    user.merge_pr("p1", promote("tumor-classifier", "dev", "staging"), "unsigned promotion")
    (blocked,) = rec.settle().outcomes
    assert blocked.phase is Phase.BLOCKED
    assert "has no signature that verifies against environments/allowed_signers" in blocked.reason
    user.merge_pr("p3", promote("digits-classifier", "dev", "staging"), "signed promotion", sign_with=keys["dana"])
    (signed,) = rec.settle().outcomes
    assert (signed.action.model, signed.phase) == ("digits-classifier", Phase.DEPLOYED)


def test_only_a_signed_approval_by_an_allowed_identity_for_this_change_counts(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str], fast: FastExecutor
) -> None:
    repo, rec = guarded_repo(tmp_path, keys, fast)
    dana = repo.clone("dana")
    rui, kim = repo.clone("rui", REVIEWER), repo.clone("kim", KIM)
    model = "wine-classifier"
    change = dana.merge_pr("p1", promote(model, "staging", "production"), "to production", sign_with=keys["dana"])
    (waiting,) = rec.settle().outcomes
    assert waiting.phase is Phase.BLOCKED
    assert waiting.reason == (
        "awaiting approval: production needs 1 approval(s) from rui@example.com, not the change's author(s) "
        "(dana@example.com); has 0 (none). To approve with a signing key in environments/allowed_signers: "
        f"releasectl approve {model} --env production --source {change}"
    )

    def blocked_because(fragment: str) -> None:
        (outcome,) = rec.settle().outcomes
        assert outcome.phase is Phase.BLOCKED, outcome.reason
        assert fragment in outcome.reason, outcome.reason

    own = approve(signing(dana, keys["dana"]), model, "production", capsys=capsys)
    blocked_because(f"dana@example.com's approval {own[:12]} is by an author of the change")
    outsider = approve(signing(kim, keys["kim"]), model, "production", capsys=capsys)
    blocked_because(f"kim@example.com's approval {outsider[:12]} is from outside approvals.from")
    first = repo.log("%H", f"environments/production/{model}.yaml")[-1]  # the seed commit set it first
    other = approve(signing(rui, keys["rui"]), model, "production", "--source", first, capsys=capsys)
    blocked_because(f"rui@example.com's approval {other[:12]} names {first[:12]}, not this change")
    unsigned = approve(signing(rui, None), model, "production", capsys=capsys)
    blocked_because(
        f"rui@example.com's approval {unsigned[:12]} is not signed by a key in environments/allowed_signers"
    )
    borrowed = approve(signing(rui, keys["kim"]), model, "production", capsys=capsys)
    blocked_because(
        f"rui@example.com's approval {borrowed[:12]} is signed by a key that environments/allowed_signers "
        "maps to kim@example.com"
    )

    good = approve(signing(rui, keys["rui"]), model, "production", capsys=capsys)
    (deployed,) = rec.settle().outcomes
    assert (deployed.action.model, deployed.phase) == (model, Phase.DEPLOYED)
    assert [(a.identity, a.commit) for a in deployed.action.approvals] == [(REVIEWER[1], good)]
    status = yaml.safe_load(repo_file(repo, f"status/production/{model}.yaml"))
    (counted,) = status["evidence"]["approvals"]
    assert (counted["identity"], counted["commit"], counted["key"][:7]) == (REVIEWER[1], good, "SHA256:")
    assert status["evidence"]["upstream"]["environment"] == "staging"
    upstream = status["evidence"]["upstream"]["outcome_commit"]
    assert repo_log_one(repo, upstream) == f"status(staging): {model} {status['desired']['version']} Deployed"

    # The narrow rollback path: back to the version that ran before needs no approval...
    version = status["desired"]["version"]
    dana.pull()
    assert main(["rollback", model, "--env", "production", "--repo", str(dana.path)]) == 0
    dana.push()
    (back,) = rec.settle().outcomes
    assert (back.action.kind.value, back.phase) == ("rollback", Phase.DEPLOYED)
    assert back.action.version != version
    # ...but returning to the version rolled back from needs the whole policy again.
    again = dana.merge_pr("p2", promote(model, "staging", "production"), "again", sign_with=keys["dana"])
    (reblocked,) = rec.settle().outcomes
    assert reblocked.phase is Phase.BLOCKED
    assert reblocked.reason.startswith("awaiting approval: production needs 1 approval(s) from rui@example.com")
    assert "has 0 (none)" in reblocked.reason  # the approval of the first change does not carry over
    assert again in reblocked.reason


def test_approve_after_a_squash_merge_unblocks(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str], fast: FastExecutor
) -> None:
    repo, rec = guarded_repo(tmp_path, keys, fast)
    dana = signing(repo.clone("dana"), keys["dana"])
    dana.run("checkout", "-q", "-b", "pr")
    promote("wine-classifier", "staging", "production")(dana)
    dana.commit("wine to production")
    dana.run("checkout", "-q", "main")
    dana.run("merge", "-q", "--squash", "pr")
    squashed = dana.commit("wine to production (#7)")  # one commit on main, no merge commit, no trailers
    dana.push()
    (blocked,) = rec.settle().outcomes
    assert blocked.phase is Phase.BLOCKED and f"--source {squashed}" in blocked.reason
    rui = signing(repo.clone("rui", REVIEWER), keys["rui"])
    rui.run("checkout", "-q", "-b", "approval")  # the approval travels as a PR of its own, merged --no-ff
    assert main(["approve", "wine-classifier", "--env", "production", "--repo", str(rui.path)]) == 0
    approval = capsys.readouterr().out.split()[0]
    rui.run("checkout", "-q", "main")
    rui.run("merge", "-q", "--no-ff", "approval", "-m", "Merge approval")
    rui.push()
    (deployed,) = rec.settle().outcomes
    assert [a.commit for a in deployed.action.approvals] == [approval]
    assert (deployed.action.model, deployed.phase) == ("wine-classifier", Phase.DEPLOYED)
    assert USER[1] not in [a.identity for a in deployed.action.approvals]


def test_approve_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_release_repo(tmp_path / "repo")
    dana = repo.clone("dana")
    assert main(["approve", "tumor-classifier", "--env", "qa", "--repo", str(dana.path)]) == 2
    assert "unknown environment 'qa' (environments: dev, staging, production)" in capsys.readouterr().err
    assert main(["approve", "Bad/Name", "--env", "dev", "--repo", str(dana.path)]) == 2
    assert "model 'Bad/Name' is not a DNS label" in capsys.readouterr().err
    dana.write("notes.txt", "x")
    dana.run("add", "notes.txt")
    assert main(["approve", "tumor-classifier", "--env", "dev", "--repo", str(dana.path)]) == 2
    assert "has staged changes" in capsys.readouterr().err


def repo_file(repo: ReleaseRepo, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"main:{path}"], cwd=repo.remote, check=True, capture_output=True, text=True
    ).stdout


def repo_log_one(repo: ReleaseRepo, sha: str) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--format=%s", sha], cwd=repo.remote, check=True, capture_output=True, text=True
    ).stdout.strip()
