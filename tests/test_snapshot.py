"""The snapshot reader: the start-up scan in parallel equals the serial one; polls see only changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.loop import snapshot as snapshot_module
from controller.loop.snapshot import SnapshotReader
from tests.support import ROOT, git, make_release_repo

TEMPLATE = yaml.safe_load((ROOT / "environments/dev/wine-classifier.yaml").read_text())


def _many(seed: Path) -> None:
    """450 models x 3 environments, plus pins that are broken in three different ways."""
    for i in range(450):
        for env in ("dev", "staging", "production"):
            doc = {**TEMPLATE, "model": f"m-{i:03d}", "version": f"1.{i % 7}.0"}
            (seed / f"environments/{env}/m-{i:03d}.yaml").write_text(yaml.safe_dump(doc))
    (seed / "environments/dev/broken-yaml.yaml").write_text("model: [unclosed\n")
    (seed / "environments/staging/broken-yaml.yaml").write_text("model: [unclosed\n")  # same blob, two files
    (seed / "environments/dev/bad-version.yaml").write_text(
        yaml.safe_dump({**TEMPLATE, "model": "bad-version", "version": "one"})
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    root = tmp_path_factory.mktemp("big")
    release = make_release_repo(root, edit=_many)
    return GitRepo.controller_clone(release.url, root / "ctl")


def _view(snap: snapshot_module.Snapshot) -> tuple[object, ...]:
    return (
        {k: (d.pin, d.digest, d.problems, d.source_commit) for k, d in snap.desired.items()},
        snap.recorded,
        sorted(p.line() for p in snap.problems),
    )


def test_parallel_scan_equals_serial_scan(big: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    head = big.local_head()
    parallel = SnapshotReader(big).load(head)
    monkeypatch.setattr(snapshot_module, "PARALLEL_FROM", 10**9)
    serial = SnapshotReader(big).load(head)
    assert len(parallel.desired) == 1350 + 9 + 3
    assert _view(parallel) == _view(serial)
    broken = {k: d.problems for k, d in parallel.desired.items() if d.problems}
    assert [p.line() for p in broken[("dev", "broken-yaml")]] == [
        "environments/dev/broken-yaml.yaml: is not valid YAML at line 2, column 1: did not find expected ',' or ']' "
        "[yaml]"
    ]
    assert [p.line() for p in broken[("staging", "broken-yaml")]] == [
        "environments/staging/broken-yaml.yaml: is not valid YAML at line 2, column 1: did not find expected ',' or "
        "']' [yaml]"
    ]
    assert broken[("dev", "bad-version")][0].field == "version"
    assert all(d.source_commit == head for d in parallel.desired.values())  # adoption: no trail, one walk


def test_a_poll_reads_only_what_changed(tmp_path: Path) -> None:
    release = make_release_repo(tmp_path)
    repo = GitRepo.controller_clone(release.url, tmp_path / "ctl")
    reader = SnapshotReader(repo)
    snap = reader.load(repo.local_head())
    assert reader.advance(snap, snap.head).candidates == frozenset()
    user = release.clone("user")
    doc = user.read_pin("staging", "wine-classifier")
    user.write_pin("staging", "wine-classifier", {**doc, "version": "2.2.0"})
    sha = user.commit("bump wine in staging")
    user.push()
    moved = reader.advance(snap, repo.fetch())
    assert moved.candidates == frozenset(
        {("dev", "wine-classifier"), ("staging", "wine-classifier"), ("production", "wine-classifier")}
    )
    assert moved.desired[("staging", "wine-classifier")].source_commit == sha
    assert moved.desired[("staging", "wine-classifier")].version == "2.2.0"
    assert snap.desired[("staging", "wine-classifier")].version == "2.1.0"  # the old snapshot is untouched
    assert git(repo.path, "rev-parse", "refs/remotes/origin/main") == moved.head


def test_catch_up_over_many_commits_equals_a_fresh_scan(big: GitRepo, tmp_path: Path) -> None:
    """advance() streams the log and fetches blobs while git walks; it must see what load() sees."""
    remote = Path(git(big.path, "remote", "get-url", "origin").removeprefix("file://"))
    user = tmp_path / "user"
    git(tmp_path, "clone", "-q", str(remote), str(user))
    git(user, "config", "user.name", "U")
    git(user, "config", "user.email", "u@example.com")
    reader = SnapshotReader(big)
    before = reader.load(big.local_head())
    for round_ in range(3):  # three commits, 60 pins each: the same pins change twice (superseded)
        for i in range(60):
            path = user / f"environments/dev/m-{i:03d}.yaml"
            doc = yaml.safe_load(path.read_text())
            path.write_text(yaml.safe_dump({**doc, "version": f"2.{round_}.{i}"}))
        (user / "environments/dev/broken-yaml.yaml").write_text(f"model: [unclosed {round_}\n")
        git(user, "commit", "-qam", f"round {round_}")
    git(user, "push", "-q", "origin", "HEAD:main")
    head = big.fetch()
    moved = reader.advance(before, head)
    fresh = SnapshotReader(big).load(head)
    assert {k: (d.pin, d.digest, d.problems) for k, d in moved.desired.items()} == {
        k: (d.pin, d.digest, d.problems) for k, d in fresh.desired.items()
    }
    assert moved.desired[("dev", "m-007")].version == "2.2.7"
    assert moved.candidates is not None and ("production", "m-059") in moved.candidates
    # replaced in the range: 2.0.7 and 2.1.7; and 1.0.0, the pin at the old head, which had no outcome
    # yet (nothing is recorded in this repo): a controller that planned it records it Superseded too
    assert sorted((c.model, c.version) for c in moved.superseded if c.model == "m-007") == [
        ("m-007", "1.0.0"),
        ("m-007", "2.0.7"),
        ("m-007", "2.1.7"),
    ]
