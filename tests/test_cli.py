"""The command line: outputs, formats and exit codes (0 ok, 1 a check said no, 2 usage, 3 runtime)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.adapters.local.executor import LocalExecutor
from controller.app.cli import main, parser
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
    assert (code, out, err) == (0, "", "9 pin(s) in 3 environment(s) of the working tree: 0 problem(s)\n")

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
    assert err == "9 pin(s) in 3 environment(s) of the working tree: 2 problem(s)\n"
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
    assert code == 0 and "push the new branch and open a PR" in err
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
    assert (code, err) == (2, "error: unknown environment 'qa' (environments: dev, staging, production)\n")


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


# -- conventions (issue 11, item 10) ---------------------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    top = parser()
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_has_help_and_shows_its_default_and_every_subcommand_ends_with_an_example() -> None:
    subcommands = _subcommands()
    assert sorted(subcommands) == sorted(
        [
            "approve",
            "audit",
            "check",
            "completion",
            "datasets",
            "demo",
            "drift",
            "history",
            "plan",
            "promote",
            "recipes",
            "reconcile",
            "reproduce",
            "retry",
            "rollback",
            "serve",
            "status",
            "validate",
        ]
    )
    for name, sub in subcommands.items():
        text = sub.format_help()
        example = text.rstrip().rsplit("\nexample:\n", 1)
        assert len(example) == 2 and example[1].lstrip().startswith(f"releasectl {name}"), name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                flat = " ".join(text.split())
                assert f"(default: {action.default})" in flat or "(default: " in (action.help or ""), (
                    f"{name} {action.option_strings[0]} does not show its default {action.default!r}"
                )


def test_every_command_that_prints_a_result_has_json() -> None:
    for name, sub in _subcommands().items():
        formats = next((a.choices for a in sub._actions if "--format" in a.option_strings), None)
        if name in ("demo", "serve", "completion"):  # a story, a server, a script: no result to format
            assert formats is None, name
        else:
            assert formats is not None and "json" in formats, name


def test_traceback_works_before_and_after_the_subcommand(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for args in (
        ["--traceback", "status", "--repo", str(tmp_path)],
        ["status", "--repo", str(tmp_path), "--traceback"],
    ):
        code, _, err = run(capsys, *args)
        assert code == 2
        assert err.startswith("Traceback (most recent call last):")
        assert err.endswith(f"error: {tmp_path}: not a git repository\n")


def test_a_subcommands_usage_error_shows_that_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--bogus")
    assert (code, out) == (2, "")
    assert err.startswith("usage: releasectl status ")
    assert err.endswith("releasectl status: error: unrecognized arguments: --bogus\n")


def test_promote_and_rollback_answer_in_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path)
    user = repo.clone("user")
    code, out, _ = run(
        capsys, "promote", "tumor-classifier", "--from", "dev", "--to", "staging", "--repo", str(user.path),
        "--format", "json",
    )  # fmt: skip
    made = json.loads(out)
    assert code == 0 and set(made) == {"sha", "ref", "summary", "next_step"}
    assert (made["ref"], made["next_step"]) == (
        "promote/tumor-classifier-staging-1.1.0",
        "git push origin promote/tumor-classifier-staging-1.1.0",
    )
    assert git(user.path, "rev-parse", "--abbrev-ref", "HEAD") == "main"  # promote leaves the current branch


def test_datasets_lists_every_builtin_with_its_full_digest(capsys: pytest.CaptureFixture[str]) -> None:
    from workflows.datasets import builtin_digest

    code, out, _ = run(capsys, "datasets", "--format", "json")
    found = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and sorted(found) == ["breast-cancer", "digits", "iris", "wine"]
    assert found["iris"] == {
        "name": "iris",
        "rows": 150,
        "features": 4,
        "classes": 3,
        "target": "target",
        "source": "built-in",
        "sha256": builtin_digest("iris"),
    }
    code, out, _ = run(capsys, "datasets")
    assert out.splitlines()[0].split() == ["NAME", "ROWS", "FEATURES", "CLASSES", "TARGET", "SOURCE", "SHA256"]
    assert out.splitlines()[3].split() == ["iris", "150", "4", "3", "target", "built-in", builtin_digest("iris")]


def test_a_missing_snapshot_names_the_full_builtin_digest(tmp_path: Path) -> None:
    from workflows.datasets import builtin_digest, load
    from workflows.steps.common import CheckFailed

    with pytest.raises(CheckFailed) as caught:
        load(tmp_path, "iris", "1" * 64)
    assert str(caught.value).endswith(f"; the built-in snapshot is {builtin_digest('iris')}")


def test_bash_completion_completes_subcommands_flags_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "releasectl.bash"
    code = main(["completion", "bash"])
    assert code == 0

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        probe = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
            f'COMP_LINE="{" ".join(words)}"; COMP_POINT=${{#COMP_LINE}}; _shtab_releasectl; '
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return sorted(done.stdout.split())

    out = subprocess.run(
        [sys.executable, "-m", "controller", "completion", "bash"], capture_output=True, text=True, check=True
    )
    script.write_text(out.stdout)
    assert complete("releasectl", "sta") == ["status"]
    assert complete("releasectl", "status", "--fo") == ["--format"]
    assert complete("releasectl", "status", "--format", "") == ["json", "table"]
    assert complete("releasectl", "completion", "") == ["bash", "zsh"]


def test_zsh_completion_is_generated_for_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller", "completion", "zsh"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("#compdef releasectl\n")
    for name in _subcommands():
        assert f"\n    {name}:'" in out
    assert '"--fail-on[exit 1 when a pin ends the pass in one of these phases' in out


def test_cluster_manifests_with_the_local_executor_are_refused_at_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Not one Errored outcome per workflow, minutes later: one line at start, and nothing cloned."""
    code, out, err = run(
        capsys, "reconcile", "--once", "--repo", (tmp_path / "r.git").as_uri(), "--home", str(tmp_path / "h"),
        "--artifact-store", "s3://ml/rc", "--target", "kserve",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        "error: --artifact-store and --target kserve compile workflows for a cluster (volumes, images, KServe): "
        "give --executor argo too; the local executor runs the home's own store and serving\n"
    )
    assert not (tmp_path / "h").exists()
