"""Pins read from bytes: every problem names the file, the field path and the rule, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.core.models import ModelPin
from controller.core.pins import DesiredPin, PinPath, PinReader, check_versions, classify, parse_pin, parse_policy
from controller.core.schemas import Problem, schema_files

ROOT = Path(__file__).resolve().parent.parent
PATH = "environments/dev/tumor-classifier.yaml"
BASE = (ROOT / PATH).read_text()
F = f"{PATH}: "

CASES = {
    "version-not-semver": (
        ("version: 1.1.0", "version: 1.x"),
        [F + "version: '1.x' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.0) [pattern]"],
    ),
    "owner-missing": (("owner: ml-platform@example.com\n", ""), [F + "owner: is required [required]"]),
    "unknown-field": (
        ("owner: ml-platform@example.com", "owner: ml-platform@example.com\nteam: vision"),
        [
            F + "team: is not allowed here (allowed: apiVersion, deployment, evaluation, kind, model, monitoring, "
            "owner, training, version) [additionalProperties]"
        ],
    ),
    "gate-not-an-expression": (
        ('">= 0.95"', '"about 0.95"'),
        [
            F
            + "evaluation.gates.roc_auc: 'about 0.95' is not a gate like \">= 0.95\" (operator >=, <=, >, < or == and "
            "a number) [pattern]"
        ],
    ),
    "gate-on-unknown-metric": (
        ('roc_auc: ">= 0.95"', 'roc_acu: ">= 0.95"'),
        [
            F + "evaluation.gates.roc_acu: is not a known name (one of accuracy, balanced_accuracy, f1_macro, roc_auc, "
            "log_loss, p50_latency_ms, p95_latency_ms, recall) [enum]"
        ],
    ),
    "unknown-recipe": (
        ("recipe: gradient-boosting", "recipe: xgboost"),
        [
            F + "training.recipe: 'xgboost' is not a known recipe "
            "(known: gradient-boosting, random-forest, logistic-regression) [recipe]"
        ],
    ),
    "unknown-recipe-param": (
        ("max_depth: 2", "max_dept: 2"),
        [
            F + "training.params.max_dept: is not a parameter of recipe gradient-boosting (allowed: learning_rate, "
            "max_depth, n_estimators, seed, subsample) [recipe-params]"
        ],
    ),
    "recipe-param-type": (
        ("max_depth: 2", "max_depth: deep"),
        [F + "training.params.max_depth: 'deep' is not of type int [recipe-params]"],
    ),
    "seed-missing": ((", seed: 7", ""), [F + "training.params.seed: is required: training must be repeatable [seed]"]),
    "yaml-syntax": (
        ("kind: ModelPin", "kind: [ModelPin"),
        [F + "is not valid YAML at line 4, column 6: did not find expected ',' or ']' [yaml]"],
    ),
    "dataset-digest-uppercase": (
        ("75a1d74a", "75A1D74A"),
        [
            F + "training.dataset.sha256: '75A1D74A59df9cb0a78ecc0a36085bf8a85239557f178d3b8d758e88b26416e1' is not a "
            "sha256 digest (64 lowercase hex digits) [pattern]"
        ],
    ),
    "unsupported-strategy": (
        ("strategy: direct", "strategy: rainbow"),
        [F + "deployment.strategy: 'rainbow' is not one of direct, canary, blue-green, shadow [enum]"],
    ),
    "canary-steps-not-increasing": (
        ("strategy: direct", "strategy: canary\n  canary: {steps: [50, 10]}"),
        [F + "deployment.canary: canary.steps must increase strictly and end at 100 [value_error]"],
    ),
    "model-not-a-dns-label": (
        ("model: tumor-classifier", "model: Tumor_Classifier"),
        [
            F
            + "model: 'Tumor_Classifier' is not a DNS label (lowercase letters, digits and '-', at most 63, no leading "
            "or trailing '-') [pattern]"
        ],
    ),
    "model-differs-from-file": (
        ("model: tumor-classifier", "model: lung-classifier"),
        [F + "model: 'lung-classifier' must equal the file stem 'tumor-classifier' [model-matches-file]"],
    ),
}


@pytest.mark.parametrize(("edit", "lines"), list(CASES.values()), ids=list(CASES))
def test_bad_pins_say_file_field_and_rule(edit: tuple[str, str], lines: list[str]) -> None:
    old, new = edit
    assert old in BASE
    result = parse_pin(PATH, BASE.replace(old, new, 1).encode(), "tumor-classifier")
    assert isinstance(result, list)
    assert [p.line() for p in result] == lines


def test_a_list_document_is_rejected_as_a_whole() -> None:
    result = parse_pin(PATH, b"- 1\n- 2\n", "tumor-classifier")
    assert isinstance(result, list)
    assert [p.line() for p in result] == [F + "must be a mapping [type]"]


def test_every_example_pin_is_valid_and_schema_agrees_with_pydantic() -> None:
    from controller.core.schemas import load_yaml, validator

    pins = sorted((ROOT / "environments").glob("*/*.yaml"))
    assert len(pins) == 9
    for path in pins:
        result = parse_pin(str(path.relative_to(ROOT)), path.read_bytes(), path.stem)
        assert isinstance(result, ModelPin), result
        assert list(validator("ModelPin").iter_errors(load_yaml(path.read_bytes()))) == []


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (
            "environments/dev/Tumor.yaml",
            "environments/dev/Tumor.yaml: file stem 'Tumor' is not a DNS label (a-z, 0-9, '-') [dns-label]",
        ),
        (
            "environments/dev/bad;rm -rf.yaml",
            "environments/dev/bad;rm -rf.yaml: file stem 'bad;rm -rf' is not a DNS label (a-z, 0-9, '-') [dns-label]",
        ),
        (
            "environments/dev/tümor.yaml",
            "environments/dev/tümor.yaml: file stem 'tümor' is not a DNS label (a-z, 0-9, '-') [dns-label]",
        ),
        ("environments/dev/..yaml", None),
        (
            "environments/Prod/x.yaml",
            "environments/Prod/x.yaml: environment folder 'Prod' is not a DNS label [environment]",
        ),
        ("environments/dev/x.yml", "environments/dev/x.yml: pin files end in .yaml [extension]"),
        (
            "environments/dev/a/b.yaml",
            "environments/dev/a/b.yaml: pins live directly under environments/<env>/ [layout]",
        ),
        ("environments/dev/README.md", None),
        ("environments/README.md", None),
    ],
    ids=[
        "uppercase",
        "shell-metacharacters",
        "unicode",
        "dotfile",
        "unknown-env",
        "yml",
        "nested",
        "readme",
        "top-readme",
    ],
)
def test_paths_that_cannot_be_pins(path: str, line: str | None) -> None:
    result = classify(path, ["dev", "staging", "production"])
    assert (result.line() if result is not None else None) == line  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "mode", "line"),
    [
        (
            "environments/qa/x.yaml",
            "100644",
            "environments/qa/x.yaml: environment 'qa' is not in policy.yaml order (dev, production, staging) "
            "[environment]",
        ),
        (
            "environments/dev/x.yaml",
            "120000",
            "environments/dev/x.yaml: is a symbolic link: release files must be regular files (never followed) "
            "[symlink]",
        ),
        (
            "environments/dev/x.yaml",
            "160000",
            "environments/dev/x.yaml: is a submodule: release files must be regular files (never followed) [submodule]",
        ),
    ],
    ids=["unlisted-environment", "symlink", "submodule"],
)
def test_paths_refused_whatever_they_hold_still_name_a_status_file(path: str, mode: str, line: str) -> None:
    result = classify(path, ["dev", "staging", "production"], mode)
    assert isinstance(result, PinPath) and result.problem is not None
    assert (result.environment, result.model, result.problem.line()) == (path.split("/")[1], "x", line)
    desired = PinReader(("dev", "staging", "production")).read(path, "never-read", None, "1" * 40, result)
    assert isinstance(desired, DesiredPin) and not desired.valid and desired.problems == (result.problem,)


@pytest.mark.parametrize(
    ("path", "mode", "rule"),
    [
        ("environments/dev/Evil.yaml", "120000", "symlink"),
        ("environments/linked-env", "120000", "symlink"),
        ("environments/vendored", "160000", "submodule"),
        ("environments/policy.yaml", "120000", "symlink"),
        ("environments/dev/README.md", "120000", "symlink"),
    ],
)
def test_a_symlink_or_submodule_anywhere_under_environments_is_refused(path: str, mode: str, rule: str) -> None:
    result = classify(path, ["dev"], mode)
    assert isinstance(result, Problem) and (result.path, result.rule) == (path, rule)


def test_a_good_path_names_its_pin() -> None:
    result = classify("environments/staging/wine-classifier.yaml", ["dev", "staging"])
    assert (result.environment, result.model) == ("staging", "wine-classifier")  # type: ignore[union-attr]


def test_a_missing_policy_is_a_problem() -> None:
    result = parse_policy(None)
    assert isinstance(result, list)
    assert [p.line() for p in result] == [
        "environments/policy.yaml: is missing: the release repo needs a promotion policy [policy]"
    ]


@pytest.mark.parametrize(
    ("policy", "line"),
    [
        (
            "order: [dev, staging]\nenvironments:\n  staging: {requires: production}\n",
            "environments/policy.yaml: environments.staging.requires must name the environment before it in order "
            "[value_error]",
        ),
        ("order: [dev, dev]\n", "environments/policy.yaml: order lists an environment twice [value_error]"),
        (
            "order: [dev]\nenvironments:\n  qa: {}\n",
            "environments/policy.yaml: environments.qa is not in order [value_error]",
        ),
        (
            "order: [dev]\nenvironments:\n  dev: {min_soak: soon}\n",
            "environments/policy.yaml: environments.dev.min_soak: 'soon' is not a duration like 30s, 15m, 1h or 2d "
            "[pattern]",
        ),
        ("order: []\n", "environments/policy.yaml: order: [] should be non-empty [minItems]"),
    ],
    ids=["requires-not-previous", "duplicate-env", "env-not-in-order", "bad-duration", "empty-order"],
)
def test_policy_rules(policy: str, line: str) -> None:
    result = parse_policy(f"apiVersion: releasectl/v1\nkind: PromotionPolicy\n{policy}".encode())
    assert isinstance(result, list)
    assert [p.line() for p in result] == [line]


def test_spec_digest_covers_model_version_and_training_only() -> None:
    a = parse_pin(PATH, BASE.encode(), "tumor-classifier")
    b = parse_pin(PATH, BASE.replace('">= 0.95"', '">= 0.97"').encode(), "tumor-classifier")
    c = parse_pin(PATH, BASE.replace("seed: 7", "seed: 8").encode(), "tumor-classifier")
    assert isinstance(a, ModelPin) and isinstance(b, ModelPin) and isinstance(c, ModelPin)
    assert a.spec_digest() == b.spec_digest() != c.spec_digest()
    assert (
        a.spec_digest()
        == "sha256:"
        + __import__("hashlib")
        .sha256(
            json.dumps(
                {"model": a.model, "version": a.version, "training": a.training.model_dump(mode="json")},
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        )
        .hexdigest()
    )


def test_same_version_must_mean_the_same_spec_everywhere() -> None:
    reader = PinReader(("dev", "staging", "production"))
    dev = reader.read(PATH, "b1", BASE.encode(), "1" * 40)
    staging_text = BASE.replace("n_estimators: 60", "n_estimators: 61")
    staging = reader.read("environments/staging/tumor-classifier.yaml", "b2", staging_text.encode(), "2" * 40)
    assert isinstance(dev, DesiredPin) and isinstance(staging, DesiredPin)
    problems = check_versions({"dev": dev, "staging": staging}, ["dev", "staging", "production"])
    assert list(problems) == ["staging"]
    assert problems["staging"].rule == "same-version-same-spec"
    assert (
        problems["staging"]
        .line()
        .startswith("environments/staging/tumor-classifier.yaml: training: version 1.1.0 is sha256:")
    )


def test_reader_memoises_by_path_and_blob() -> None:
    reader = PinReader(("dev",))
    first = reader.read(PATH, "blob-1", BASE.encode(), "1" * 40)
    again = reader.read(PATH, "blob-1", None, "2" * 40)  # no bytes needed: cached
    assert isinstance(first, DesiredPin) and isinstance(again, DesiredPin)
    assert first.pin is again.pin and again.source_commit == "2" * 40


def test_checked_in_schemas_match_the_models() -> None:
    for name, text in schema_files().items():
        assert (ROOT / "schemas" / name).read_text() == text, f"schemas/{name} is stale: run `make schemas`"
