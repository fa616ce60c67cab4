"""`releasectl audit` from git alone, `--verify` over the chain, and a trail signed by the controller.

Real git repos (a bare file:// remote, clones, pushes), real ssh keys made here (ssh-keygen), real
signatures (gpg.format=ssh) checked offline with plain `git verify-commit`.
"""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.app.cli import main
from controller.core.audit import schema_text
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import REVIEWER, ROOT, Clone, ReleaseRepo, git, make_release_repo

CONTROLLER_EMAIL = "releasectl@noreply.invalid"


def keygen(tmp: Path, name: str) -> tuple[Path, str]:
    key = tmp / f"{name}_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (tmp / f"{name}_key.pub").read_text().strip()


def promote(clone: Clone, model: str, source: str, target: str) -> str:
    def edit(c: Clone) -> None:
        up = c.read_pin(source, model)
        c.write_pin(target, model, {**c.read_pin(target, model), "version": up["version"], "training": up["training"]})

    return clone.merge_pr(f"promote-{model}-{target}", edit, f"promote {model} to {target}")


def audit(capsys: pytest.CaptureFixture[str], clone: Clone, *args: str) -> tuple[int, str, list[str]]:
    clone.pull()
    code = main(["audit", "--repo", str(clone.path), *args])
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line]


@pytest.fixture
def signed_story(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fast: FastExecutor
) -> tuple[ReleaseRepo, Reconciler, Path]:
    """Adoption, a promotion to staging, an approved promotion to production; the trail signed."""
    key, public = keygen(tmp_path, "controller")

    def seed(root: Path) -> None:
        policy = yaml.safe_load((root / "environments/policy.yaml").read_text())
        policy["environments"]["production"]["approvals"] = {"min": 1, "from": [REVIEWER[1]]}
        (root / "environments/policy.yaml").write_text(yaml.safe_dump(policy))
        (root / "environments/allowed_signers").write_text(f'{CONTROLLER_EMAIL} namespaces="git" {public}\n')

    repo = make_release_repo(tmp_path / "repo", edit=seed)
    ctl = GitRepo.controller_clone(repo.url, tmp_path / "ctl")
    ctl.signing_key = str(key)
    rec = Reconciler(ctl, fast, fast.compiler())
    assert len(rec.settle(full=True).outcomes) == 9
    dana, rui = repo.clone("dana"), repo.clone("rui", REVIEWER)
    promote(dana, "tumor-classifier", "dev", "staging")
    assert [o.phase for o in rec.settle().outcomes] == [Phase.DEPLOYED]
    promote(dana, "wine-classifier", "staging", "production")
    assert [o.phase for o in rec.settle().outcomes] == [Phase.BLOCKED]
    rui.pull()
    assert main(["approve", "wine-classifier", "--env", "production", "--repo", str(rui.path)]) == 0
    rui.push()
    assert [o.phase for o in rec.settle().outcomes] == [Phase.DEPLOYED]
    capsys.readouterr()
    return repo, rec, tmp_path / "allowed_signers"


def test_every_status_commit_verifies_offline_with_plain_git(
    signed_story: tuple[ReleaseRepo, Reconciler, Path], tmp_path: Path
) -> None:
    repo, _, _ = signed_story
    signers = tmp_path / "signers"
    signers.write_text(git(repo.remote, "show", "main:environments/allowed_signers") + "\n")
    status_commits = repo.log("%H", "status")
    assert len(status_commits) == 12  # 9 adopted, staging, the Blocked production change, then Deployed
    for sha in status_commits:
        done = subprocess.run(
            ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", sha],
            cwd=repo.remote,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f'Good "git" signature for {CONTROLLER_EMAIL}' in done.stderr


def test_a_replayed_status_commit_is_signed_again(signed_story: tuple[ReleaseRepo, Reconciler, Path]) -> None:
    repo, rec, _ = signed_story
    dana, other = repo.clone("dana2"), repo.clone("other", ("Oli Other", "oli@example.com"))
    promote(dana, "tumor-classifier", "staging", "production")  # Blocked: awaiting approval

    def someone_pushes(_name: str) -> None:
        other.pull()
        other.write("README.md", "the release repo\n")
        other.commit("Add a README", "README.md")
        other.push()

    promote(dana, "digits-classifier", "dev", "staging")
    assert isinstance(rec.executor, FastExecutor)
    rec.executor.on_finished = someone_pushes
    result = rec.settle()
    assert result.push_retries == 1
    path = Path(str(repo.root)) / "as"
    path.write_text(git(repo.remote, "show", "main:environments/allowed_signers") + "\n")
    config = ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={path}"]
    lines = git(repo.remote, *config, "log", "--first-parent", "--format=%G? %GS %s", "main").splitlines()
    newer = lines[: next(i for i, line in enumerate(lines) if line.endswith(" Add a README"))]
    assert newer, lines[:5]  # the status commits replayed on top of the README commit
    assert all(line.startswith(f"G {CONTROLLER_EMAIL} status(") for line in newer), newer


def test_audit_reports_every_change_and_the_chain_verifies(
    signed_story: tuple[ReleaseRepo, Reconciler, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _, _ = signed_story
    reader = repo.clone("auditor")
    code, out, err = audit(capsys, reader, "--format", "json", "--verify")
    assert (code, err) == (0, [])
    report = json.loads(out)
    jsonschema.validate(report, json.loads((ROOT / "schemas/AuditReport.json").read_text()))
    assert report["breaks"] == []
    (prod_wine,) = [
        m for e in report["environments"] if e["environment"] == "production" for m in e["models"]
        if m["model"] == "wine-classifier"
    ]  # fmt: skip
    adopted, promoted = prod_wine["changes"]
    assert adopted["outcomes"][0]["adopted"] is True
    assert [o["phase"] for o in promoted["outcomes"]] == ["Blocked", "Deployed"]
    deployed = promoted["outcomes"][1]
    assert [a["identity"] for a in deployed["approvals"]] == [REVIEWER[1]]
    assert promoted["authors"] == ["dana@example.com"] and promoted["merger"] == "dana@example.com"
    assert deployed["upstream_environment"] == "staging" and len(deployed["upstream_commit"]) == 40
    assert deployed["signed_by"] == CONTROLLER_EMAIL
    assert {g["metric"] for g in deployed["gates"]} == {"roc_auc", "accuracy"}
    assert deployed["policy_digest"].startswith("sha256:") and promoted["time_to_deploy_s"] >= 0
    summary = report["summary"]
    assert (summary["changes"], summary["deploys"], summary["rollbacks"]) == (11, 2, 0)
    assert summary["change_failure_rate"] == 0.0

    code, out, _ = audit(capsys, reader, "--env", "production", "--model", "wine-classifier")
    assert code == 0
    assert out.startswith("# Release audit at `")
    assert "## production\n\n### wine-classifier\n" in out and "## staging" not in out
    assert "| rui@example.com | Deployed |" in out

    code, out, _ = audit(capsys, reader, "--format", "html")
    page = _Page()
    page.feed(out)
    assert code == 0 and page.external == []
    assert page.timelines == ["dev", "staging", "production"]
    assert sorted(page.plots) == ["accuracy", "roc_auc"]  # one plot per gated metric


def test_verify_names_the_commit_of_each_break(
    signed_story: tuple[ReleaseRepo, Reconciler, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _, _ = signed_story
    dana = repo.clone("mallory")
    dana.pull()
    pin = dana.read_pin("production", "tumor-classifier")
    dana.write_pin("production", "tumor-classifier", {**pin, "owner": "someone@example.com"})
    unapproved = dana.commit("tweak production directly")
    status_file = "status/dev/tumor-classifier.yaml"
    doc = yaml.safe_load((dana.path / status_file).read_text())
    dana.write(status_file, json.dumps({**doc, "reason": "all fine, trust me"}, indent=2) + "\n")
    hand_edited = dana.commit("fix the status by hand")
    doc = yaml.safe_load((dana.path / "status/dev/wine-classifier.yaml").read_text())
    dana.write("status/dev/wine-classifier.yaml", json.dumps({**doc, "reason": "forged"}, indent=2) + "\n")
    forged_env = {
        "GIT_AUTHOR_NAME": "releasectl",
        "GIT_AUTHOR_EMAIL": CONTROLLER_EMAIL,
        "GIT_COMMITTER_NAME": "releasectl",
        "GIT_COMMITTER_EMAIL": CONTROLLER_EMAIL,
    }
    git(dana.path, "add", "-A")
    git(dana.path, "commit", "-q", "-m", "status(dev): wine-classifier 2.1.0 Deployed", env=forged_env)
    forged = dana.head()
    dana.push()

    code, _, lines = audit(capsys, dana, "--verify")
    assert code == 1
    assert lines == [
        f"{unapproved}: production/tumor-classifier 1.0.0 was pushed to production's pin without the approvals "
        "production requires (0 of 1 that count) [pin-without-approvals]",
        f"{hand_edited}: {status_file} was changed by dana@example.com, not by the controller ({CONTROLLER_EMAIL}) "
        "[status-by-someone-else]",
        f"{forged}: status commit for status/dev/wine-classifier.yaml is not signed, not by the controller's key "
        f"({CONTROLLER_EMAIL}) [status-not-signed]",
    ]


def test_verify_finds_a_live_version_without_its_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path / "repo")
    rec = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "ctl"), fast, fast.compiler())
    rec.settle(full=True)
    forger = repo.clone("forger")
    path = forger.path / "status/production/tumor-classifier.yaml"
    doc = yaml.safe_load(path.read_text())
    staging = yaml.safe_load((forger.path / "status/staging/wine-classifier.yaml").read_text())
    doc["live"] = {**staging["live"], "version": "9.9.9"}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    git(forger.path, "add", "-A")
    env = {"GIT_AUTHOR_EMAIL": CONTROLLER_EMAIL, "GIT_COMMITTER_EMAIL": CONTROLLER_EMAIL}
    git(forger.path, "commit", "-q", "-m", "status(production): tumor-classifier 9.9.9 Deployed", env=env)
    forged = forger.head()
    forger.push()
    code, _, lines = audit(capsys, forger, "--verify")
    assert code == 1
    assert lines == [
        f"{forged}: production/tumor-classifier 9.9.9 is live in the trail without a Deployed outcome for it "
        "[live-without-outcome]"
    ]


def test_audit_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = make_release_repo(tmp_path / "repo").clone("c")
    assert main(["audit", "--repo", str(clone.path), "--since", "last tuesday"]) == 2
    assert "--since 'last tuesday': not a date (YYYY-MM-DD or an ISO 8601 time)" in capsys.readouterr().err
    assert main(["audit", "--repo", str(clone.path), "--env", "qa"]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err
    missing = tmp_path / "no_such_key"
    assert main(["reconcile", "--repo", "file:///nowhere.git", "--signing-key", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"error: --signing-key {missing}: not a readable file (an ssh private key, e.g. ssh-keygen -t ed25519)\n"
    )


def test_the_published_schema_is_current() -> None:
    assert (ROOT / "schemas/AuditReport.json").read_text() == schema_text(), "run `make schemas`"


class _Page(HTMLParser):
    """Finds the timelines, the plots and anything that would need the network."""

    def __init__(self) -> None:
        super().__init__()
        self.timelines: list[str] = []
        self.plots: list[str] = []
        self.external: list[str] = []
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("data-environment")
        if tag == "ol" and "timeline" in (a.get("class") or "") and self._section:
            self.timelines.append(self._section)
        if tag == "svg" and "metric-plot" in (a.get("class") or ""):
            assert "polyline" not in self.plots
            self.plots.append(a.get("data-metric") or "")
        for name in ("src", "href"):
            if a.get(name) and tag not in ("svg",):
                self.external.append(f"{tag} {name}={a[name]}")
        if tag == "link" or (tag == "script" and a.get("src")):
            self.external.append(tag)
