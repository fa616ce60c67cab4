"""Drift: the served-input sample, PSI and KS, and `releasectl drift` opening a branch on a real remote.

The acceptance: a real serving endpoint answers a shifted input distribution generated here, and
`releasectl drift` pushes a branch to the bare file:// remote whose commit names the drifted
features with their statistics and bumps the dev pin; an unshifted distribution opens nothing.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import ks_2samp

from controller.app.cli import main
from controller.app.drift import next_minor, parse_since
from controller.core import drift
from controller.core.models import DriftThresholds, LiveRef, ModelStatus
from controller.errors import UsageError
from tests.support import ReleaseRepo, git, make_release_repo
from workflows import datasets, sampling, serving
from workflows.steps import validate_data
from workflows.steps.deploy import deploy
from workflows.steps.train import train

BC = "breast-cancer"
MODEL = "tumor-classifier"
T = DriftThresholds(psi=0.2, ks=0.15, min_samples=100)


# -- the pure statistics and decision ----------------------------------------------------------


@pytest.mark.parametrize(
    ("stats", "samples", "drifted", "enough"),
    [
        pytest.param([("a", 0.05, 0.05), ("b", 0.1, 0.1)], 300, [], True, id="below-both"),
        pytest.param([("a", 0.25, 0.05), ("b", 0.1, 0.1)], 300, ["a"], True, id="psi-crossed"),
        pytest.param([("a", 0.05, 0.2), ("b", 0.1, 0.1)], 300, ["a"], True, id="ks-crossed"),
        pytest.param([("a", 0.2, 0.15)], 300, [], True, id="at-the-thresholds-is-not-drift"),
        pytest.param([("a", 0.3, 0.3), ("b", 0.9, 0.1)], 300, ["b", "a"], True, id="worst-psi-first"),
        pytest.param([("a", 0.9, 0.9)], 99, [], False, id="too-few-samples-decide-nothing"),
        pytest.param([("a", 0.9, 0.9)], 100, ["a"], True, id="exactly-min-samples"),
    ],
)
def test_decide(stats: list[tuple[str, float, float]], samples: int, drifted: list[str], enough: bool) -> None:
    decision = drift.decide(stats, samples, T)
    assert [f.feature for f in decision.drifted] == drifted and decision.enough is enough


@pytest.mark.parametrize(
    ("shift", "scale"), [pytest.param(0.0, 1.0, id="same"), pytest.param(0.5, 1.0, id="shifted"),
                         pytest.param(0.0, 2.0, id="wider")]
)  # fmt: skip
def test_ks_is_scipys_statistic_and_psi_is_the_validate_steps(shift: float, scale: float) -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=500), rng.normal(shift, scale, size=300)
    assert drift.ks(ref, cur) == pytest.approx(ks_2samp(ref, cur).statistic, abs=1e-12)
    assert drift.psi(ref, cur) == pytest.approx(validate_data.psi(ref, cur), abs=1e-12)


def test_compare_refuses_a_sample_of_another_width() -> None:
    with pytest.raises(ValueError, match="the sample has 3 features per row, the training data 2"):
        drift.compare(np.zeros((5, 2)), np.zeros((5, 3)), ["a", "b"], T)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1h", "2026-12-01T09:00:00+00:00", id="hours"),
        pytest.param("2d", "2026-11-29T10:00:00+00:00", id="days"),
        pytest.param("2026-11-30T08:00:00Z", "2026-11-30T08:00:00+00:00", id="iso-z"),
        pytest.param("2026-11-30T08:00:00", "2026-11-30T08:00:00+00:00", id="iso-naive-is-utc"),
    ],
)
def test_since(text: str, expected: str) -> None:
    from datetime import UTC, datetime

    when = parse_since(text, datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert when is not None and when.isoformat() == expected


def test_bad_since_and_versions() -> None:
    from datetime import UTC, datetime

    with pytest.raises(UsageError, match="--since 'yesterday': not a duration"):
        parse_since("yesterday", datetime.now(UTC))
    assert next_minor("1.2.3") == "1.3.0" and next_minor("0.9.0-rc.1") == "0.10.0"


# -- the sample --------------------------------------------------------------------------------


def test_the_sample_is_uniform_and_bounded(tmp_path: Path) -> None:
    sampler = sampling.Sampler(tmp_path, "production", max_rows=100, flush_every=1000, seed=1)
    X = np.arange(10_000, dtype=np.float64).reshape(-1, 1)
    for start in range(0, 10_000, 50):
        sampler.add("m", X[start : start + 50], now=1_000 + start)
    sampler.flush()
    stored = sampling.read_sample(tmp_path, "production", "m")
    assert stored is not None and stored["seen"] == 10_000 and len(stored["rows"]) == 100
    values = sorted(r["x"][0] for r in stored["rows"])
    assert values[0] < 2_000 and values[-1] > 8_000  # a sample of the whole stream, not its head
    assert all(1_000 <= r["t"] <= 11_000 for r in stored["rows"])
    # Bytes bound the rows too: 200 features at ~24 bytes each leave room for 16 rows in 80 kB.
    wide = sampling.Sampler(tmp_path, "production", max_rows=1_000, max_bytes=80_000, seed=1)
    wide.add("w", np.full((500, 200), 1.0 / 3.0))
    wide.flush()
    path = sampling.sample_path(tmp_path, "production", "w")
    assert len(json.loads(path.read_text())["rows"]) == 16 and path.stat().st_size <= 80_000
    # Another width (a retrained model with other features) starts the sample again.
    sampler.add("m", np.zeros((3, 2)))
    sampler.flush()
    again = sampling.read_sample(tmp_path, "production", "m")
    assert again is not None and (again["seen"], again["width"], len(again["rows"])) == (3, 2, 3)


# -- releasectl drift against a real remote ------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A release repo with production's tumor-classifier live, and its served inputs' home."""
    home = tmp_path / "home"
    for sub in ("data", "store", "serving"):
        (home / sub).mkdir(parents=True)
    repo = make_release_repo(tmp_path)
    clone = repo.clone("people")
    pin = clone.read_pin("production", MODEL)
    sha = pin["training"]["dataset"]["sha256"]
    params = pin["training"]["params"]
    artifact, _report = train(
        model=MODEL, version=pin["version"], spec_digest="sha256:" + "cd" * 32, recipe=pin["training"]["recipe"],
        params=json.dumps(params), dataset=BC, dataset_sha256=sha, data_uri=(home / "data").as_uri(),
        store_uri=(home / "store").as_uri(),
    )  # fmt: skip
    deploy.__wrapped__(  # type: ignore[attr-defined]
        "production", MODEL, pin["version"], artifact, "sha256:" + "cd" * 32, "direct", "",
        (home / "store").as_uri(), (home / "serving").as_uri(),
    )  # fmt: skip
    live = LiveRef(
        version=pin["version"], spec_digest="sha256:" + "cd" * 32, artifact=artifact,
        since="2026-12-01T08:00:00Z", dataset_sha256=sha,
    )  # fmt: skip
    status = ModelStatus(
        model=MODEL, environment="production", phase="Deployed",
        desired={"version": pin["version"], "source_commit": clone.head()}, live=live, artifact=artifact,
    )  # fmt: skip
    clone.write(f"status/production/{MODEL}.yaml", status.model_dump_json(by_alias=True, exclude_none=True))
    clone.commit("status(production): tumor-classifier Deployed", "status")
    clone.push()
    data = datasets.load(home / "data", BC, sha)
    X_train, _, _, _ = datasets.split(data, int(params["seed"]))
    yield {"repo": repo, "clone": clone, "home": home, "X_train": X_train, "names": data.feature_names}


def serve_rows(home: Path, rows: np.ndarray) -> None:
    """Clients of the real endpoint, one request of 10 rows at a time."""
    server = serving.make_server(home / "serving", (home / "store").as_uri(), "production")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for start in range(0, len(rows), 10):
            body = json.dumps({"instances": rows[start : start + 10].tolist()}).encode()
            request = urllib.request.Request(
                f"{server.url}/v1/models/{MODEL}:predict", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()  # writes the pending sample


def run_drift(*args: str) -> tuple[int, dict[str, Any]]:
    out = StringIO()
    with redirect_stdout(out):
        code = main(["drift", "--env", "production", "--format", "json", *args])
    return code, json.loads(out.getvalue())


def refs(repo: ReleaseRepo) -> str:
    return git(repo.remote, "for-each-ref", "--format=%(refname) %(objectname)")


def test_a_shifted_distribution_opens_a_branch_with_the_evidence(world: dict[str, Any]) -> None:
    home, clone, repo = world["home"], world["clone"], world["repo"]
    rng = np.random.default_rng(11)
    rows = world["X_train"][rng.integers(0, len(world["X_train"]), size=400)].copy()
    rows[:, 0] *= 1.6  # mean radius
    rows[:, 2] *= 1.6  # mean perimeter
    serve_rows(home, rows)
    fresh = datasets.builtin_bytes(BC)  # a refreshed snapshot in the catalog: one row more
    new_sha = datasets.register(home / "data", BC, fresh + fresh.split(b"\n")[1] + b"\n")
    dev_before = clone.read_pin("dev", MODEL)

    code, report = run_drift("--repo", str(clone.path), "--home", str(home))

    assert code == 1 and report["drift"] is True
    (result,) = [m for m in report["models"] if m["model"] == MODEL]
    decision = result["decision"]
    assert decision["samples"] == 400 and sorted(decision["drifted"]) == ["mean perimeter", "mean radius"]
    branch = result["branch"]
    assert branch.startswith(f"releasectl/drift/{MODEL}-") and len(branch.rsplit("-", 1)[1]) == 12
    pushed = git(repo.remote, "rev-parse", f"refs/heads/{branch}")
    assert pushed == result["commit"]
    body = git(repo.remote, "log", "-1", "--format=%B", pushed)
    assert body.startswith(f"drift(dev): retrain {MODEL} {next_minor(dev_before['version'])} on {BC} {new_sha[:12]}")
    figures = {f["feature"]: f for f in decision["features"]}
    for name in decision["drifted"]:
        assert re.search(rf"\n  {name} +psi {figures[name]['psi']:.4f}  ks {figures[name]['ks']:.4f}\n", body), name
    assert "psi > 0.2 or ks > 0.15, min_samples 200" in body and "Samples: 400 rows" in body
    assert "Nothing retrains until a person merges this change." in body
    diff = git(repo.remote, "diff", "main", pushed)
    assert f"-version: {dev_before['version']}\n+version: {next_minor(dev_before['version'])}" in diff
    assert new_sha in diff and f"environments/dev/{MODEL}.yaml" in diff
    changed = git(repo.remote, "diff", "--name-only", "main", pushed).split()
    assert changed == [f"environments/dev/{MODEL}.yaml"]  # only the dev pin: production is the controller's job


def test_an_unshifted_distribution_opens_nothing(world: dict[str, Any]) -> None:
    home, clone, repo = world["home"], world["clone"], world["repo"]
    rng = np.random.default_rng(5)
    serve_rows(home, world["X_train"][rng.integers(0, len(world["X_train"]), size=600)])
    before = refs(repo)
    code, report = run_drift("--repo", str(clone.path), "--home", str(home))
    assert code == 0 and report["drift"] is False
    (result,) = [m for m in report["models"] if m["model"] == MODEL]
    assert result["decision"]["samples"] == 600 and result["decision"]["drifted"] == [] and result["branch"] is None
    assert result["note"] == "no feature crossed the thresholds"
    assert refs(repo) == before


def test_since_keeps_only_the_window(world: dict[str, Any]) -> None:
    """Shifted rows served two days ago, unshifted ones now: --since 1h sees no drift, the whole sample does."""
    home, clone, repo = world["home"], world["clone"], world["repo"]
    X = world["X_train"]
    sampler = sampling.Sampler(home / "serving", "production", seed=2)
    sampler.add(MODEL, X[:300] * 1.7, now=time.time() - 2 * 86400)
    sampler.add(MODEL, X[:300], now=time.time())
    sampler.flush()
    before = refs(repo)
    code, report = run_drift("--repo", str(clone.path), "--home", str(home), "--since", "1h", "--model", MODEL)
    assert code == 0 and report["models"][0]["decision"]["samples"] == 300 and refs(repo) == before
    code, report = run_drift("--repo", str(clone.path), "--home", str(home), "--model", MODEL, "--no-branch")
    assert code == 1 and report["models"][0]["decision"]["samples"] == 600 and report["models"][0]["branch"] is None
    assert refs(repo) == before


def test_no_sample_and_too_few_rows_decide_nothing(world: dict[str, Any]) -> None:
    home, clone = world["home"], world["clone"]
    code, report = run_drift("--repo", str(clone.path), "--home", str(home), "--model", MODEL)
    assert code == 0 and report["models"][0]["note"] == f"no input sample for {MODEL} in production yet"
    serve_rows(home, world["X_train"][:50] * 3)
    code, report = run_drift("--repo", str(clone.path), "--home", str(home), "--model", MODEL)
    assert code == 0 and report["models"][0]["note"] == "50 sampled rows in the window, fewer than min_samples 200"


def test_an_unknown_environment_is_a_usage_error(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drift", "--env", "qa", "--repo", str(world["clone"].path), "--home", str(world["home"])])
    assert code == 2
    assert "unknown environment 'qa' (environments: dev, staging, production)" in capsys.readouterr().err


# -- the pin fields ----------------------------------------------------------------------------

PIN_PATH = "environments/dev/tumor-classifier.yaml"


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        pytest.param("monitoring:\n  drift: {psi: 0}\n",
                     "monitoring.drift.psi: 0 is less than or equal to the minimum of 0 [exclusiveMinimum]",
                     id="psi-must-be-positive"),
        pytest.param("monitoring:\n  drift: {ks: 1.5}\n",
                     "monitoring.drift.ks: 1.5 is greater than the maximum of 1 [maximum]", id="ks-at-most-one"),
        pytest.param("monitoring:\n  drift: {min_sample: 10}\n",
                     "monitoring.drift.min_sample: is not allowed here (allowed: ks, min_samples, psi) "
                     "[additionalProperties]", id="misspelt-field"),
        pytest.param("deployment:\n  strategy: shadow\n  shadow: {min_agreement: 1.5}\n",
                     "deployment.shadow.min_agreement: 1.5 is greater than the maximum of 1 [maximum]",
                     id="agreement-at-most-one"),
        pytest.param("deployment:\n  strategy: shadow\n  shadow: {min_requests: 5}\n",
                     "deployment.shadow.min_requests: 5 is less than the minimum of 10 [minimum]",
                     id="too-few-requests"),
    ],
)  # fmt: skip
def test_bad_shadow_and_monitoring_fields_say_file_field_and_rule(tail: str, line: str) -> None:
    from controller.core.pins import parse_pin

    base = (Path(__file__).parent.parent / PIN_PATH).read_text()
    text = base.split("deployment:")[0] + tail
    result = parse_pin(PIN_PATH, text.encode(), "tumor-classifier")
    assert isinstance(result, list) and [p.line() for p in result] == [f"{PIN_PATH}: {line}"]


def test_a_shadow_pin_with_monitoring_parses_with_its_defaults() -> None:
    from controller.core.pins import parse_pin

    base = (Path(__file__).parent.parent / PIN_PATH).read_text()
    text = base.split("deployment:")[0] + "deployment:\n  strategy: shadow\nmonitoring:\n  drift: {psi: 0.3}\n"
    pin = parse_pin(PIN_PATH, text.encode(), "tumor-classifier")
    assert not isinstance(pin, list)
    assert pin.deployment.shadow.min_requests == 200 and pin.deployment.shadow.min_agreement == 0.95
    assert (pin.monitoring.drift.psi, pin.monitoring.drift.ks, pin.monitoring.drift.min_samples) == (0.3, 0.15, 200)
