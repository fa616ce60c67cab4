"""Acceptance of the smoke tier: `releasectl check --smoke` on real PR branches of a real release repo.

Real git (a bare file:// remote, a clone, branches), real scikit-learn on a sample, the real compiled
smoke manifests on the LocalExecutor in a temporary home. A PR that breaks a recipe (a parameter
value the schema allows and scikit-learn refuses) or a user's dataset (a column removed, the target
column missing) fails, naming the pin file and the step; a correct PR passes; neither changes the
repository (refs, HEAD, working tree).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.app.cli import main
from controller.core import models
from tests.support import Clone, git, make_release_repo
from workflows import datasets, recipes

pytestmark = pytest.mark.slow

TUMOR = "environments/dev/tumor-classifier.yaml"
USER_A = "environments/dev/tumors-a.yaml"
USER_B = "environments/dev/tumors-b.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def repo_state(clone: Clone) -> tuple[str, str, str]:
    """Every ref, HEAD, and the working tree (untracked files too): what a read-only command keeps."""
    return (
        clone.run("for-each-ref", "--format=%(refname) %(objectname)"),
        clone.run("rev-parse", "HEAD"),
        clone.run("status", "--porcelain", "--untracked-files=all", "--ignored"),
    )


def _csv(drop: str | None = None) -> bytes:
    """breast-cancer as a user's CSV with its class column called `label`, optionally without a column."""
    lines = datasets.builtin_bytes("breast-cancer").decode().splitlines()
    header = lines[0].split(",")
    header[-1] = "label"
    rows = [header, *(line.split(",") for line in lines[1:])]
    if drop is not None:
        i = header.index(drop)
        rows = [r[:i] + r[i + 1 :] for r in rows]
    return ("\n".join(",".join(r) for r in rows) + "\n").encode()


def _user_pin(model: str, path: Path) -> str:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return (
        "apiVersion: releasectl/v1\nkind: ModelPin\n"
        f"model: {model}\nversion: 1.0.0\nowner: ml-platform@example.com\n"
        "training:\n  recipe: random-forest\n"
        f"  dataset: {{name: tumors, sha256: {sha}, uri: '{path.as_uri()}', target: label}}\n"
        "  params: {n_estimators: 30, max_depth: 4, seed: 3}\n"
        'evaluation:\n  gates: {accuracy: ">= 0.80"}\n'
    )


@pytest.fixture()
def pr(tmp_path: Path) -> tuple[Clone, Path]:
    """A release repo whose main has the example set plus two dev pins on a user's CSV; a PR branch."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "v1.csv").write_bytes(_csv())

    def seed(root: Path) -> None:
        (root / USER_A).write_text(_user_pin("tumors-a", data / "v1.csv"))
        (root / USER_B).write_text(_user_pin("tumors-b", data / "v1.csv"))

    repo = make_release_repo(tmp_path, edit=seed)
    user = repo.clone("user")
    user.run("checkout", "-q", "-b", "pr")
    return user, data


def _edit_pin(user: Clone, rel: str, old: str, new: str) -> None:
    path = user.path / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new))


def test_a_correct_pr_passes_with_its_sample_and_cheap_settings(
    capsys: pytest.CaptureFixture[str], pr: tuple[Clone, Path]
) -> None:
    user, _ = pr
    _edit_pin(user, TUMOR, "version: 1.1.0", "version: 1.2.0")
    _edit_pin(user, TUMOR, "n_estimators: 60", "n_estimators: 80")
    user.commit("tumor-classifier 1.2.0: more trees")
    before = repo_state(user)
    code, out, err = run(capsys, "check", "--smoke", "--repo", str(user.path), "--format", "json")
    assert code == 0, (out, err)
    report = json.loads(out)
    assert report["base"] == user.run("rev-parse", "origin/main")
    assert report["base_ref"] == "origin/main"
    assert report["head"] == user.head()
    assert report["removed"] == []
    [pin] = report["pins"]
    assert pin["path"] == TUMOR
    assert (pin["result"], pin["step"], pin["reason"]) == ("passed", None, "")
    assert pin["steps"] == {"validate-data": "Succeeded", "train": "Succeeded", "evaluate": "Succeeded"}
    # the recipe's cheap settings: n_estimators capped at 20, the rest as the pin says
    assert pin["params"] == {"n_estimators": 20, "learning_rate": 0.1, "max_depth": 2, "seed": 7}
    # 5 % of each class, at least 20 rows of each: breast-cancer has 212 and 357 rows per class
    assert pin["sample"] == {"rows": 40, "of": 569, "fraction": 0.05, "seed": 0}
    assert [g["metric"] for g in pin["gates"]] == ["roc_auc", "accuracy", "p95_latency_ms"]
    assert set(pin["metrics"]) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "log_loss",
        "p50_latency_ms",
        "p95_latency_ms",
        "roc_auc",
    }
    assert pin["unchecked"] == ["max_regression.accuracy (no live version in the smoke tier)"]
    assert repo_state(user) == before


def test_a_pr_that_breaks_a_recipe_or_a_dataset_fails_naming_the_pin_and_the_step(
    capsys: pytest.CaptureFixture[str], pr: tuple[Clone, Path]
) -> None:
    user, data = pr
    # 1. a parameter value the schema allows and scikit-learn refuses
    _edit_pin(user, TUMOR, "learning_rate: 0.1", "learning_rate: -0.1")
    # 2. a new snapshot of the user's data without a feature column the live model was trained on
    (data / "v2.csv").write_bytes(_csv(drop="mean radius"))
    (user.path / USER_A).write_text(_user_pin("tumors-a", data / "v2.csv").replace("1.0.0", "1.1.0"))
    # 3. a new snapshot without the target column
    (data / "v3.csv").write_bytes(_csv(drop="label"))
    (user.path / USER_B).write_text(_user_pin("tumors-b", data / "v3.csv").replace("1.0.0", "1.1.0"))
    user.commit("three broken changes")
    before = repo_state(user)

    code, out, err = run(capsys, "check", "--smoke", "--repo", str(user.path), "--base", "origin/main")
    assert code == 1, (out, err)
    header = ", ".join(datasets.builtin_bytes("breast-cancer").decode().splitlines()[0].split(",")[:20])
    missing_target = (
        f"{USER_B}: validate-data failed: dataset tumors: the target column 'label' must appear once in "
        f"the header ({header}, ...)"
    )
    assert len(missing_target) > 400  # so the line is cut, at 400 characters
    failures = [line for line in out.splitlines() if line.startswith("environments/") and " failed: " in line]
    assert failures == [
        f"{TUMOR}: train failed: recipe gradient-boosting: The 'learning_rate' parameter of "
        "GradientBoostingClassifier must be a float in the range [0.0, inf). Got -0.1 instead.",
        f"{USER_A}: validate-data failed: dataset tumors: features differ from the reference snapshot "
        "(missing: mean radius; new: none; or reordered)",
        missing_target[:399] + "…",
    ]
    assert "3 pin(s) changed" in err and "0 passed, 3 failed, 0 error(s)" in err
    assert repo_state(user) == before

    code, out, _ = run(capsys, "check", "--smoke", "--repo", str(user.path), "--format", "json")
    assert code == 1
    pins = {p["path"]: p for p in json.loads(out)["pins"]}
    assert {p: (v["result"], v["step"]) for p, v in pins.items()} == {
        TUMOR: ("failed", "train"),
        USER_A: ("failed", "validate-data"),
        USER_B: ("failed", "validate-data"),
    }
    assert pins[TUMOR]["steps"] == {"validate-data": "Succeeded", "train": "Failed", "evaluate": "Omitted"}
    v1 = hashlib.sha256((data / "v1.csv").read_bytes()).hexdigest()
    assert pins[USER_A]["reference"] == v1  # drift against what the pin named before the change
    assert repo_state(user) == before


def test_only_the_prs_own_pins_are_checked_when_the_base_moved_on(
    capsys: pytest.CaptureFixture[str], pr: tuple[Clone, Path]
) -> None:
    """The merge-base, not the base's tip: a pin changed on main after the PR branched is not the PR's."""
    user, _ = pr
    _edit_pin(user, USER_A, "n_estimators: 30", "n_estimators: 31")
    _edit_pin(user, USER_A, "version: 1.0.0", "version: 1.0.1")
    user.commit("tumors-a 1.0.1")
    git(user.path, "checkout", "-q", "main")
    _edit_pin(user, TUMOR, "learning_rate: 0.1", "learning_rate: -0.1")  # broken, but on main, not in the PR
    user.commit("main moved on")
    git(user.path, "checkout", "-q", "pr")
    code, out, err = run(capsys, "check", "--smoke", "--repo", str(user.path), "--base", "main", "--format", "json")
    assert code == 0, (out, err)
    report = json.loads(out)
    assert [p["path"] for p in report["pins"]] == [USER_A]
    assert report["base"] == user.run("merge-base", "main", "pr")


def test_usage_and_an_unreadable_pin(capsys: pytest.CaptureFixture[str], pr: tuple[Clone, Path]) -> None:
    user, _ = pr
    code, _, err = run(capsys, "check", "--repo", str(user.path))
    assert code == 2 and "--smoke" in err
    code, _, err = run(capsys, "check", "--smoke", "--repo", str(user.path), "--base", "no-such-branch")
    assert code == 2 and "'no-such-branch' is not a commit" in err
    code, out, err = run(capsys, "check", "--smoke", "--repo", str(user.path))
    assert (code, out.strip()) == (0, "no pin changed: nothing to smoke-check")
    _edit_pin(user, TUMOR, "max_depth: 2,", "max_depth: 2, depth: 3,")
    user.commit("an unknown parameter")
    code, out, _ = run(capsys, "check", "--smoke", "--repo", str(user.path), "--format", "json")
    assert code == 1
    [pin] = json.loads(out)["pins"]
    assert (pin["result"], pin["step"], pin["steps"]) == ("failed", "pin", {})
    assert pin["reason"] == (
        "training.params.depth: is not a parameter of recipe gradient-boosting "
        "(allowed: learning_rate, max_depth, n_estimators, seed, subsample) [recipe-params]"
    )


# -- a team's installed recipes: their own cheap settings, or the params as they are ----------------

PACKAGE = '''
"""A team's recipes in their own package."""

from workflows.recipes import Recipe


def _extra_trees(params, seed):
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=seed, **params)


capped = Recipe("acme-capped", {"n_estimators": int}, _extra_trees, "ExtraTrees", cheap={"n_estimators": 5})
plain = Recipe("acme-plain", {"n_estimators": int}, _extra_trees, "ExtraTrees")
'''


@pytest.fixture
def installed_recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution (a module and its .dist-info with entry points) on sys.path and PYTHONPATH."""
    site = tmp_path / "site"
    (site / "acme_smoke").mkdir(parents=True)
    (site / "acme_smoke/__init__.py").write_text(PACKAGE)
    info = site / "acme_smoke-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-smoke\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[releasectl.recipes]\nacme-capped = acme_smoke:capped\nacme-plain = acme_smoke:plain\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # the executor's steps get it from the environment
    recipes.registry(refresh=True)
    yield
    for name in ("acme-capped", "acme-plain"):
        models.RECIPES.pop(name, None)
    sys.modules.pop("acme_smoke", None)
    monkeypatch.undo()
    recipes.registry(refresh=True)


def _iris_pin(model: str, recipe: str) -> str:
    return (
        "apiVersion: releasectl/v1\nkind: ModelPin\n"
        f"model: {model}\nversion: 1.0.0\nowner: ml-platform@example.com\n"
        f"training:\n  recipe: {recipe}\n"
        f"  dataset: {{name: iris, sha256: {datasets.builtin_digest('iris')}}}\n"
        "  params: {n_estimators: 15, seed: 2}\n"
        'evaluation:\n  gates: {accuracy: ">= 0.5"}\n'
    )


def test_installed_recipes_say_their_cheap_settings_or_train_as_pinned(
    capsys: pytest.CaptureFixture[str], pr: tuple[Clone, Path], installed_recipes: None
) -> None:
    user, _ = pr
    user.write("environments/dev/iris-capped.yaml", _iris_pin("iris-capped", "acme-capped"))
    user.write("environments/dev/iris-plain.yaml", _iris_pin("iris-plain", "acme-plain"))
    user.commit("two models on a team's recipes")
    code, out, err = run(capsys, "check", "--smoke", "--repo", str(user.path), "--format", "json")
    assert code == 0, (out, err)
    pins = {p["model"]: p for p in json.loads(out)["pins"]}
    assert {m: (p["result"], p["params"]) for m, p in pins.items()} == {
        "iris-capped": ("passed", {"n_estimators": 5, "seed": 2}),
        "iris-plain": ("passed", {"n_estimators": 15, "seed": 2}),
    }
    # iris has 50 rows per class: 5 % is 3, so the floor of 20 per class holds
    assert pins["iris-plain"]["sample"] == {"rows": 60, "of": 150, "fraction": 0.05, "seed": 0}
