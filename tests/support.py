"""Test support: real git release repos (a bare file:// remote, clones, merges, pushes).

Workflows in the controller's tests run on the real LocalExecutor with fast step functions
(tests/fastexec.py); tests that need real training use the LocalExecutor with the real steps.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
USER = ("Dana Scientist", "dana@example.com")
REVIEWER = ("Rui Reviewer", "rui@example.com")


def git(cwd: Path | str, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=full_env)
    return out.stdout.strip()


@dataclass
class Clone:
    """A person's working clone of the release repo."""

    path: Path
    name: str = USER[0]
    email: str = USER[1]

    def run(self, *args: str) -> str:
        return git(self.path, *args)

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def read_pin(self, env: str, model: str) -> dict[str, Any]:
        return yaml.safe_load((self.path / f"environments/{env}/{model}.yaml").read_text())

    def write_pin(self, env: str, model: str, doc: dict[str, Any]) -> None:
        self.write(f"environments/{env}/{model}.yaml", yaml.safe_dump(doc, sort_keys=False))

    def commit(self, message: str, *paths: str) -> str:
        self.run("add", *(paths or ("-A",)))
        self.run("commit", "-q", "-m", message)
        return self.run("rev-parse", "HEAD")

    def pull(self) -> None:
        self.run("pull", "-q", "--ff-only", "origin", "main")

    def push(self) -> None:
        self.run("push", "-q", "origin", "HEAD:main")

    def merge_pr(
        self,
        branch: str,
        edit: Callable[[Clone], None],
        title: str,
        sign_with: Path | None = None,
    ) -> str:
        """A PR: a commit on `branch`, merged into main with --no-ff (a merge commit), pushed."""
        self.pull()
        self.run("checkout", "-q", "-b", branch)
        edit(self)
        self.commit(title)
        self.run("checkout", "-q", "main")
        body = f"Merge pull request from {branch}\n\n{title}\n"
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}"] if sign_with else []
        for attempt in range(10):  # a forge merges onto the current main: redo the merge when main moved
            git(self.path, *signing, "merge", "-q", "--no-ff", *(["-S"] if sign_with else []), branch, "-m", body)
            try:
                self.push()
                break
            except subprocess.CalledProcessError:
                if attempt == 9:
                    raise
                self.run("fetch", "-q", "origin")
                self.run("reset", "-q", "--hard", "origin/main")
        return self.run("rev-parse", "HEAD")

    def head(self) -> str:
        return self.run("rev-parse", "HEAD")


@dataclass
class ReleaseRepo:
    """A bare `file://` remote seeded from a copy of environments/, and clones of it."""

    root: Path
    remote: Path

    @property
    def url(self) -> str:
        return self.remote.as_uri()

    def clone(self, name: str, who: tuple[str, str] = USER) -> Clone:
        path = self.root / name
        git(self.root, "clone", "-q", self.url, str(path))
        git(path, "config", "user.name", who[0])
        git(path, "config", "user.email", who[1])
        return Clone(path, who[0], who[1])

    def log(self, fmt: str, *paths: str) -> list[str]:
        args = ["log", "--first-parent", f"--format={fmt}", "main"]
        if paths:
            args += ["--", *paths]
        out = git(self.remote, *args)
        return out.split("\n") if out else []


def make_release_repo(
    root: Path, environments: Path = ROOT / "environments", edit: Callable[[Path], None] | None = None
) -> ReleaseRepo:
    """A release repo whose first commit is a copy of `environments` (optionally edited)."""
    seed = root / "seed"
    shutil.copytree(environments, seed / "environments")
    if edit is not None:
        edit(seed)
    git(root, "init", "-q", "-b", "main", str(seed))
    git(seed, "config", "user.name", USER[0])
    git(seed, "config", "user.email", USER[1])
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "Initial release set")
    remote = root / "remote.git"
    git(root, "clone", "-q", "--bare", str(seed), str(remote))
    shutil.rmtree(seed)
    return ReleaseRepo(root, remote)


def trailers(repo: ReleaseRepo, key: str) -> list[str]:
    """`git log --format='%(trailers:key=K,valueonly)'` over main, newest first, status commits only."""
    return [line for line in repo.log(f"%(trailers:key={key},valueonly,separator=%x2C)", "status") if line.strip()]
