"""The hostile corpus (tests/hostile/): every case refused with its rule, in one merge, while the
valid pins still reconcile.

One merge adds every case of tests/hostile/cases.tsv to a real release repo (a bare file://
remote), together with one valid change. Then, through the public command line:
- `releasectl validate` exits 1 and names every case with its rule, in bounded lines;
- `releasectl plan` rejects every case whose path can name a status file;
- `releasectl reconcile --once` (the local executor: real steps) records one Rejected outcome per
  such case and Deploys the valid change in the same pass, runs no workflow for any case, writes
  nothing outside status/, prints no traceback; the cases whose path cannot name a status file
  (not DNS labels, wrong layout, symlinked or submodule folders) are reported as `error:` lines;
- a second pass records nothing new.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.core.paths import split_pin_path
from tests.support import ROOT, Clone, ReleaseRepo, git, make_release_repo

CORPUS = ROOT / "tests/hostile"
MARKER = Path("/tmp/releasectl-hostile-executed")  # what the python-tag case would create if it ran
MAX_LINE = 1000  # no line of output may be longer


@dataclass(frozen=True)
class Case:
    name: str
    placed: str
    mode: str
    rule: str

    @property
    def file(self) -> Path:
        return CORPUS / "pins" / (f"{self.name}.yaml" if self.mode == "file" else f"{self.name}.{self.mode}")

    @property
    def status(self) -> str | None:
        """Where its Rejected outcome is recorded; None when its path cannot name a status file."""
        key = split_pin_path(self.placed)
        if key is None or self.rule in ("dns-label", "layout", "extension") or ";" in self.placed:
            return None
        return f"status/{key[0]}/{key[1]}.yaml"


CASES = [Case(*line.split("\t")) for line in (CORPUS / "cases.tsv").read_text().splitlines()[1:]]


def test_the_corpus_is_complete() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES) and len({c.placed for c in CASES}) == len(CASES)
    assert all(c.file.is_file() for c in CASES)
    assert sorted(p.name for p in (CORPUS / "pins").iterdir()) == sorted(c.file.name for c in CASES)
    rules = {c.rule for c in CASES}
    assert {"yaml-alias", "duplicate-key", "size", "binary", "utf-8", "symlink", "submodule", "environment"} <= rules
    laughs = (CORPUS / "pins/billion-laughs.yaml").read_text()
    # aliases nested nine deep under evaluation.gates: 9**10 "lol"s once expanded
    assert all(f"&a{i} [" in laughs for i in range(9)) and laughs.count("*a8") == 9
    assert "evaluation:\n  gates:\n    a0: &a0" in laughs
    assert "version: 0.4.0\nversion: 0.5.0\n" in (CORPUS / "pins/duplicate-version.yaml").read_text()


@dataclass
class Merged:
    repo: ReleaseRepo
    user: Clone
    home: Path
    merge: str
    adopted: str  # the head after the first (adoption) pass
    validate: subprocess.CompletedProcess[str]
    plan: subprocess.CompletedProcess[str]
    reconcile: subprocess.CompletedProcess[str]
    again: subprocess.CompletedProcess[str]


def releasectl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def add_corpus(user: Clone, branch: str) -> None:
    """One PR that adds every case (files, symlinks, submodules) and one valid change; merged --no-ff."""
    user.pull()
    user.run("checkout", "-q", "-b", branch)
    gitlinks = []
    for case in CASES:
        target = user.path / case.placed
        target.parent.mkdir(parents=True, exist_ok=True)
        if case.mode == "symlink":
            os.symlink(case.file.read_text(), target)
        elif case.mode == "submodule":
            gitlinks.append((case.file.read_text().strip(), case.placed))
        else:
            shutil.copyfile(case.file, target)
    pin = user.read_pin("dev", "wine-classifier")
    pin["evaluation"]["gates"]["accuracy"] = ">= 0.80"  # a valid change in the same merge
    user.write_pin("dev", "wine-classifier", pin)
    user.run("add", "-A")
    for sha, path in gitlinks:
        user.run("update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    user.run("commit", "-q", "-m", "Add the hostile corpus")
    user.run("checkout", "-q", "main")
    user.run("merge", "-q", "--no-ff", branch, "-m", f"Merge pull request from {branch}")
    user.push()


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Merged:
    root = tmp_path_factory.mktemp("hostile")

    def only_wine_in_dev(seed: Path) -> None:
        for pin in seed.glob("environments/*/*.yaml"):
            if (
                pin.name != "policy.yaml"
                and pin.relative_to(seed).as_posix() != "environments/dev/wine-classifier.yaml"
            ):
                pin.unlink()

    repo = make_release_repo(root, edit=only_wine_in_dev)
    home = root / "home"
    once = ("reconcile", "--repo", repo.url, "--once", "--home", str(home), "--format", "json")
    first = releasectl(*once)
    assert first.returncode == 0, first.stderr
    adopted = git(repo.remote, "rev-parse", "main")
    user = repo.clone("user")
    MARKER.unlink(missing_ok=True)
    add_corpus(user, "hostile")
    merge = user.head()
    return Merged(
        repo,
        user,
        home,
        merge,
        adopted,
        validate=releasectl("validate", "--repo", str(user.path)),
        plan=releasectl("plan", "--repo", str(user.path), "--format", "json"),
        reconcile=releasectl(*once),
        again=releasectl(*once),
    )


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_validate_names_every_case_with_its_rule(merged: Merged) -> None:
    result = merged.validate
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = lines_of(result.stdout)
    for case in CASES:
        mine = [line for line in lines if line.startswith(f"{case.placed}:")]
        assert any(line.endswith(f"[{case.rule}]") for line in mine), (case, mine)
    assert all(any(line.startswith(f"{c.placed}:") for c in CASES) for line in lines)  # nothing else is wrong
    assert all(len(line) <= MAX_LINE for line in lines)
    assert len(result.stdout) < 64 * 1024
    many = [line for line in lines if line.startswith("environments/dev/many-bad-params.yaml:")]
    assert len(many) == 10 and many[-1] == "environments/dev/many-bad-params.yaml: … and 51 more problem(s) [more]"
    assert "\x1b" not in result.stdout  # terminal escapes are shown escaped, never sent
    pins = 1 + sum(c.status is not None for c in CASES)  # wine-classifier and every case that names a pin
    assert result.stderr == f"{pins} pin(s) in 3 environment(s): {len(lines)} problem(s)\n"


def test_plan_rejects_every_case_that_names_a_status_file(merged: Merged) -> None:
    assert merged.plan.returncode == 1 and "Traceback" not in merged.plan.stderr
    plan = json.loads(merged.plan.stdout)
    rejected = {(a["environment"], a["model"]) for a in plan["actions"] if a["kind"] == "reject"}
    recorded = {tuple(c.status.removeprefix("status/").removesuffix(".yaml").split("/")) for c in CASES if c.status}
    assert rejected == recorded
    assert [a["kind"] for a in plan["actions"] if a["model"] == "wine-classifier"] == ["deploy"]
    unrecorded = [c for c in CASES if c.status is None]
    assert len(plan["problems"]) == len(unrecorded) and all(len(p) <= MAX_LINE for p in plan["problems"])


def test_one_pass_rejects_every_case_and_still_deploys_the_valid_change(merged: Merged) -> None:
    result = merged.reconcile
    assert result.returncode == 1  # some files cannot be pins at all: said on stderr, the rest recorded
    assert "Traceback" not in result.stderr + result.stdout
    outcomes = json.loads(result.stdout)["outcomes"]
    by_key = {(o["environment"], o["model"]): o for o in outcomes}
    assert len(by_key) == len(outcomes)  # one outcome per pin
    assert by_key.pop(("dev", "wine-classifier"))["phase"] == "Deployed"
    recordable = [c for c in CASES if c.status is not None]
    assert len(by_key) == len(recordable) >= 60
    for case in recordable:
        env, model = case.status.removeprefix("status/").removesuffix(".yaml").split("/")  # type: ignore[union-attr]
        outcome = by_key[(env, model)]
        assert outcome["phase"] == "Rejected" and f"[{case.rule}]" in outcome["reason"], (case, outcome)
        assert len(outcome["reason"]) <= MAX_DOCUMENT_REASON
        status = json.loads(git(merged.repo.remote, "show", f"main:{case.status}"))
        assert (status["phase"], status["reason"]) == ("Rejected", outcome["reason"])
        assert status["desired"]["source_commit"] == merged.merge
    errors = [line for line in lines_of(result.stderr) if line.startswith("error: ")]
    for case in CASES:
        if case.status is None:
            assert any(e.startswith(f"error: {case.placed}:") and e.endswith(f"[{case.rule}]") for e in errors), case
    assert all(len(line) <= MAX_LINE for line in lines_of(result.stderr))


def test_the_pass_wrote_only_status_files_and_ran_nothing_from_the_corpus(merged: Merged) -> None:
    head = git(merged.repo.remote, "rev-parse", "main")
    changed = git(merged.repo.remote, "diff", "--name-only", "-z", merged.merge, head).split("\0")
    assert changed and all(p.startswith("status/") for p in changed if p)
    subjects = git(merged.repo.remote, "log", "--format=%s", f"{merged.merge}..{head}").splitlines()
    assert sum(s.endswith(" Rejected") for s in subjects) == sum(c.status is not None for c in CASES)
    for sha in git(merged.repo.remote, "log", "--format=%H", f"{merged.merge}..{head}").splitlines():
        body = git(merged.repo.remote, "log", "-1", "--format=%B", sha)
        assert len(body) < 8 * 1024 and "\x1b" not in body
        phases = git(merged.repo.remote, "log", "-1", "--format=%(trailers:key=Releasectl-Phase,valueonly)", sha)
        assert phases in ("Rejected", "Deployed")  # one each: the version-trailer-injection case injected none
        assert [line for line in body.splitlines() if line.startswith("Releasectl-Phase:")] == [
            f"Releasectl-Phase: {phases}"
        ]
    assert not MARKER.exists()
    runs = sorted(p.name for p in (merged.home / "executor" / "runs").iterdir())
    assert runs and all(name.startswith("rc-dev-wine-classifier-") for name in runs)
    assert not any(p.is_symlink() or p.name == "passwd" for p in merged.home.rglob("*"))


def test_a_second_pass_records_nothing_new(merged: Merged) -> None:
    assert merged.again.returncode == 1 and "Traceback" not in merged.again.stderr
    assert json.loads(merged.again.stdout)["outcomes"] == []
    assert git(merged.repo.remote, "rev-parse", "main") == json.loads(merged.reconcile.stdout)["published"]


MAX_DOCUMENT_REASON = 11 * 1000  # at most 10 lines of a file's problems, each bounded
