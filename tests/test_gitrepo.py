"""The git adapter on real repositories: reads from trees, ranges in one log, plumbing commits."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.git import CONTROLLER, GitRepo, Identity, PendingCommit
from controller.errors import GitError, UsageError
from tests.support import git, make_release_repo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    release = make_release_repo(tmp_path)
    return GitRepo.controller_clone(release.url, tmp_path / "ctl")


def test_reads_come_from_the_commit_tree_byte_for_byte(repo: GitRepo) -> None:
    head = repo.local_head()
    files = repo.ls_tree(head)
    assert sorted(files) == sorted(
        f"environments/{p}"
        for p in [
            "README.md",
            "policy.yaml",
            *(
                f"{e}/{m}.yaml"
                for e in ("dev", "staging", "production")
                for m in ("digits-classifier", "tumor-classifier", "wine-classifier")
            ),
        ]
    )
    path = "environments/dev/wine-classifier.yaml"
    expected = git(repo.path, "cat-file", "blob", files[path]).encode() + b"\n"  # git() strips the newline
    assert repo.read_blob(files[path]) == expected == repo.read_file(head, path)
    many = sorted(files.values()) * 8  # enough to take the pipelined path
    assert repo.read_blobs(many) == {sha: repo.read_blob(sha) for sha in many}
    with pytest.raises(GitError, match="missing"):
        repo.read_blobs(["0" * 40] * 70)


def test_status_commits_only_under_status_and_never_forced(repo: GitRepo, tmp_path: Path) -> None:
    head = repo.local_head()
    with pytest.raises(ValueError, match="the controller writes only under status/"):
        repo.write_commits(head, [PendingCommit((("environments/dev/x.yaml", b"x"),), "no")], CONTROLLER)
    pushed = repo.publish(
        head,
        [
            PendingCommit((("status/dev/a.yaml", b"{}\n"),), "status(dev): a 1.0.0 Deployed\n\nbody\n"),
            PendingCommit((("status/dev/b.yaml", b"{}\n"),), "status(dev): b 1.0.0 Deployed\n\nbody\n"),
        ],
    )
    remote = Path(git(repo.path, "remote", "get-url", "origin").removeprefix("file://"))
    assert git(remote, "rev-parse", "main") == pushed
    assert git(remote, "log", "--format=%an <%ae>|%s", "-2").splitlines() == [
        "releasectl <releasectl@noreply.invalid>|status(dev): b 1.0.0 Deployed",
        "releasectl <releasectl@noreply.invalid>|status(dev): a 1.0.0 Deployed",
    ]
    records = repo.log(pushed, since=head)
    assert [(r.subject, [c.path for c in r.changes]) for r in records] == [
        ("status(dev): a 1.0.0 Deployed", ["status/dev/a.yaml"]),
        ("status(dev): b 1.0.0 Deployed", ["status/dev/b.yaml"]),
    ]
    assert records[1].parents == (records[0].sha,)


def test_last_changes_walks_once_for_many_paths(repo: GitRepo, tmp_path: Path) -> None:
    head = repo.local_head()
    found = repo.last_changes(head, ["environments/dev/wine-classifier.yaml", "environments/qa/none.yaml"])
    assert found == {"environments/dev/wine-classifier.yaml": head}


def test_identity_and_repository_errors(tmp_path: Path) -> None:
    assert Identity.parse("Release Bot <bot@example.com>") == Identity("Release Bot", "bot@example.com")
    with pytest.raises(UsageError, match="must look like 'Name <email>'"):
        Identity.parse("bot")
    with pytest.raises(UsageError, match="not a git repository"):
        GitRepo(tmp_path)
