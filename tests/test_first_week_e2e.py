"""Issue 11 end to end: `reconcile --once` from the command line with real training (what it prints,
its exit-code rule), and a team's own recipe installed through the `releasectl.recipes`
entry-point group, validated and trained.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controller.app.cli import main
from controller.core import models
from tests.support import ReleaseRepo, git, make_release_repo
from workflows import recipes, store
from workflows.datasets import builtin_digest

pytestmark = pytest.mark.slow

POLICY = {
    "apiVersion": "releasectl/v1",
    "kind": "PromotionPolicy",
    "order": ["dev", "production"],
    "environments": {"dev": {}, "production": {"requires": "dev"}},
}


def iris_pin(version: str, recipe: str = "logistic-regression", **params: object) -> dict[str, object]:
    return {
        "apiVersion": "releasectl/v1",
        "kind": "ModelPin",
        "model": "iris-model",
        "version": version,
        "owner": "dana@example.com",
        "training": {
            "recipe": recipe,
            "dataset": {"name": "iris", "sha256": builtin_digest("iris")},
            "params": {"seed": 1, **params},
        },
        "evaluation": {"gates": {"accuracy": ">= 0.5"}},
    }


def small_repo(root: Path, pins: dict[str, dict[str, object]], extra: dict[str, str] | None = None) -> ReleaseRepo:
    source = root / "source"
    (source / "dev").mkdir(parents=True)
    (source / "production").mkdir()
    (source / "policy.yaml").write_text(yaml.safe_dump(POLICY, sort_keys=False))
    for rel, doc in pins.items():
        (source / rel).write_text(yaml.safe_dump(doc, sort_keys=False))
    for rel, text in (extra or {}).items():
        (source / rel).write_text(text)
    return make_release_repo(root, environments=source)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_reconcile_says_what_it_decided_and_exits_by_one_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = small_repo(
        tmp_path,
        {"dev/iris-model.yaml": iris_pin("1.0.0"), "production/iris-model.yaml": iris_pin("1.0.0")},
        {"dev/Bad.yaml": "{}\n"},  # a file that cannot be a pin: reported, not recorded
    )
    home = str(tmp_path / "home")
    bad = "error: environments/dev/Bad.yaml: file stem 'Bad' is not a DNS label (a-z, 0-9, '-') [dns-label]"

    # adoption: every outcome printed, exit 0 although a file-level problem exists
    code, out, err = run(capsys, "reconcile", "--repo", repo.url, "--home", home, "--once")
    head = repo.log("%H")[0]
    assert (code, out.splitlines()) == (
        0,
        [
            "dev/iris-model 1.0.0: Deployed",
            "production/iris-model 1.0.0: Deployed",
            f"recorded 2 outcome(s); pushed {head[:12]}",
        ],
    )
    assert bad in err.splitlines()  # on stderr (settle's every internal pass says it again)
    # the steps' stderr carries no RuntimeWarning from runpy about the warm worker's preloaded runner
    stderr = [p.read_text() for p in (tmp_path / "home/executor/runs").glob("*/steps/*/stderr")]
    assert len(stderr) == 7 and not any("Warning" in text for text in stderr)  # 4 steps in dev, 3 (no train) after
    code, _, _ = run(capsys, "reconcile", "--repo", repo.url, "--home", home, "--fail-on", "Invalid")
    assert code == 1

    # a bump that skipped dev: Blocked, printed with its reason; still exit 0 by default
    user = repo.clone("user")
    user.write("environments/production/iris-model.yaml", yaml.safe_dump(iris_pin("1.1.0", C=0.5)))
    user.commit("production 1.1.0 before dev")
    user.push()
    code, out, err = run(capsys, "reconcile", "--repo", repo.url, "--home", home, "-v")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("production/iris-model 1.1.0: Blocked: dev has not Deployed spec sha256:")
    assert lines[1] == f"recorded 1 outcome(s); pushed {repo.log('%H')[0][:12]}"
    assert lines[2].startswith("not in sync: production/iris-model Blocked (live 1.0.0): dev has not Deployed")
    assert len(lines) == 3
    # the next pass has nothing new to record, and says that production is still Blocked
    code, out, _ = run(capsys, "reconcile", "--repo", repo.url, "--home", home, "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["outcomes"] == [] and result["published"] is None
    assert [(r["environment"], r["phase"], r["live"]) for r in result["not_in_sync"]] == [
        ("production", "Blocked", "1.0.0")
    ]
    code, out, _ = run(capsys, "reconcile", "--repo", repo.url, "--home", home, "--fail-on", "failed,blocked")
    assert code == 1
    assert out.splitlines()[0] == f"nothing new to record at {repo.log('%H')[0][:12]}"
    code, _, err = run(capsys, "reconcile", "--repo", repo.url, "--home", home, "--fail-on", "Red")
    assert (code, err.splitlines()[-1]) == (
        2,
        "error: --fail-on: unknown phase 'Red' (phases: Deployed, Blocked, Rejected, Failed, Errored, "
        "Superseded, Removed, Invalid)",
    )


# -- a team's own recipe ------------------------------------------------------------------------------

PACKAGE = '''
"""A team's recipes, shipped in their own package: releasectl is not forked."""

from workflows.recipes import Recipe


def _extra_trees(params, seed):
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=seed, **params)


extra_trees = Recipe("acme-extra-trees", {"n_estimators": int, "max_depth": int}, _extra_trees, "ExtraTrees")
'''


@pytest.fixture
def installed_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution: a module and its .dist-info with an entry_points.txt, on sys.path."""
    site = tmp_path / "site"
    (site / "acme_recipes").mkdir(parents=True)
    (site / "acme_recipes/__init__.py").write_text(PACKAGE)
    info = site / "acme_recipes-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-recipes\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[releasectl.recipes]\nacme-extra-trees = acme_recipes:extra_trees\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # the executor's steps get it from the environment
    recipes.registry(refresh=True)
    yield site
    models.RECIPES.pop("acme-extra-trees", None)
    sys.modules.pop("acme_recipes", None)
    monkeypatch.undo()
    recipes.registry(refresh=True)


def test_a_user_recipe_validates_and_trains_end_to_end(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, installed_recipe: Path
) -> None:
    pin = iris_pin("1.0.0", recipe="acme-extra-trees", n_estimators=15, max_depth=3)
    repo = small_repo(tmp_path, {"dev/iris-model.yaml": pin})
    user = repo.clone("user")
    code, out, err = run(capsys, "validate", "--repo", str(user.path))
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "recipes", "--format", "json")
    mine = next(r for r in json.loads(out) if r["name"] == "acme-extra-trees")
    assert mine == {
        "name": "acme-extra-trees",
        "source": "acme-recipes (acme_recipes:extra_trees)",
        "params": {"max_depth": "int", "n_estimators": "int", "seed": "int"},
        "description": "ExtraTrees",
    }
    # its declared parameters are checked like a built-in's
    user.write(
        "environments/dev/iris-model.yaml",
        yaml.safe_dump({**pin, "training": {**pin["training"], "params": {"seed": 1, "depth": 3}}}),
    )  # type: ignore[dict-item]
    code, out, _ = run(capsys, "validate", "--repo", str(user.path))
    assert (code, out) == (
        1,
        "environments/dev/iris-model.yaml: training.params.depth: is not a parameter of recipe acme-extra-trees "
        "(allowed: max_depth, n_estimators, seed) [recipe-params]\n",
    )

    home = tmp_path / "home"
    code, out, err = run(capsys, "reconcile", "--repo", repo.url, "--home", str(home))
    assert (code, out.splitlines()[0]) == (0, "dev/iris-model 1.0.0: Deployed"), err
    status = yaml.safe_load(git(repo.remote, "show", "main:status/dev/iris-model.yaml"))
    artifact = status["live"]["artifact"]
    assert store.meta(home / "store", artifact)["recipe"] == "acme-extra-trees"
    estimator = store.get(home / "store", artifact)
    assert (type(estimator).__name__, estimator.n_estimators, estimator.max_depth) == ("ExtraTreesClassifier", 15, 3)
