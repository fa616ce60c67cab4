"""Secrets: git credentials only from files or environment variables; URLs with credentials are
redacted in every error, log line and status commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.git import GitRepo
from controller.adapters.git._credentials import FILE_ENV, TOKEN_ENV, USERNAME_ENV
from controller.core.models import Phase
from controller.errors import UsageError, redact
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import git, make_release_repo

SECRET = "s3cr3t-t0ken"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("fatal: unable to access 'https://bot:s3cr3t@git.example/r.git/'", "'https://bot:***@git.example/r.git/'"),
        ("https://ghp_abc123@github.example/o/r", "https://***@github.example/o/r"),
        ("http://u:p@h and ssh://git:pw@h2/r", "http://u:***@h and ssh://git:***@h2/r"),
        ("ssh://git@host/repo.git", "ssh://git@host/repo.git"),
        ("git@github.example:o/r.git", "git@github.example:o/r.git"),
        ("owner ml-platform@example.com", "owner ml-platform@example.com"),
    ],
    ids=["https-password", "https-token-as-user", "several", "ssh-user", "scp-like", "email"],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text).endswith(shown) and SECRET not in redact(text.replace("s3cr3t", SECRET))


def test_a_password_in_the_repo_url_is_refused_and_never_shown(tmp_path: Path) -> None:
    url = f"https://bot:{SECRET}@127.0.0.1:9/release.git"
    with pytest.raises(UsageError) as refused:
        GitRepo.controller_clone(url, tmp_path / "clone")
    assert SECRET not in str(refused.value)
    assert str(refused.value).startswith("--repo https://bot:***@127.0.0.1:9/release.git: a password in the URL")
    assert not (tmp_path / "clone").exists()  # nothing written, not even the clone's config
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "reconcile", "--repo", url, "--once", "--home", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and SECRET not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: --repo https://bot:***@127.0.0.1:9/release.git: a password in the URL")


def test_a_token_as_user_in_an_unreachable_url_is_redacted_in_the_error(tmp_path: Path) -> None:
    url = f"https://{SECRET}@127.0.0.1:9/release.git"  # nothing listens on port 9
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "reconcile", "--repo", url, "--once", "--home", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: fetch from origin failed: ") and len(proc.stderr.splitlines()) == 1
    assert SECRET not in proc.stdout + proc.stderr


def credential(clone: GitRepo, env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        ["git", "credential", "fill"],
        cwd=clone.path,
        input="protocol=https\nhost=git.example\n\n",
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", **env},
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_credentials_come_from_a_file_or_the_environment_and_never_reach_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_release_repo(tmp_path)
    secrets = tmp_path / "git-credentials"
    secrets.write_text(f"https://bot:{SECRET}@git.example\n")
    monkeypatch.setenv(FILE_ENV, str(secrets))
    clone = GitRepo.controller_clone(repo.url, tmp_path / "ctl")
    assert credential(clone, {}) == {"protocol": "https", "host": "git.example", "username": "bot", "password": SECRET}
    monkeypatch.delenv(FILE_ENV)
    monkeypatch.setenv(TOKEN_ENV, "placeholder")  # only asks for the helper: the value is read when git asks
    clone = GitRepo.controller_clone(repo.url, tmp_path / "ctl")
    got = credential(clone, {TOKEN_ENV: SECRET, USERNAME_ENV: "ci-bot"})
    assert (got["username"], got["password"]) == ("ci-bot", SECRET)
    assert SECRET not in (tmp_path / "ctl" / "config").read_text()
    monkeypatch.setenv(FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(UsageError, match=f"{FILE_ENV}=.*/missing: no such file"):
        GitRepo.controller_clone(repo.url, tmp_path / "ctl")


class LeakyExecutor(FastExecutor):
    """An executor whose errors carry a URL with credentials (as a misconfigured client's would)."""

    def submit(self, manifest: dict[str, Any]) -> str:
        raise ConnectionError(f"POST https://bot:{SECRET}@argo.example/api/v1/workflows: connection refused")


def test_an_error_with_credentials_is_redacted_in_the_status_commit_and_file(
    tmp_path: Path, fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path)
    leaky = LeakyExecutor(fast.engine, tmp_path / "leaky")
    rec = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "ctl"), leaky, leaky.compiler())
    result = rec.settle(full=True)
    assert {o.phase for o in result.outcomes} == {Phase.ERRORED}
    everything = git(repo.remote, "log", "--format=%B", "main") + git(
        repo.remote, "show", "main:status/dev/wine-classifier.yaml"
    )
    assert SECRET not in everything
    assert "could not submit workflow: POST https://bot:***@argo.example/api/v1/workflows: connection refused" in (
        everything
    )
