"""Test support: real git release repos (a bare file:// remote, clones, merges, pushes) and a
scripted Executor for the controller's own mechanics.

The ScriptedExecutor is a hand-written fake behind the Executor protocol: it reads the compiled
manifest it is given (task names, arguments) and answers as a finished Argo run would, so that
the git-side tests (trailers, idempotency, push races) run in milliseconds. Tests that need real
training use the LocalExecutor instead.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from controller.core.contract import (
    CHECK_FAILED_EXIT,
    DEPLOY,
    EVALUATE,
    GATES_FAILED,
    OUT_ARTIFACT,
    OUT_GATES,
    OUT_METRICS,
    OUT_PASSED,
    TRAIN,
    UNDEPLOY,
)
from controller.ports import FAILED, OMITTED, SKIPPED, SUCCEEDED, NodeResult, WorkflowRun

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
        approvers: tuple[str, ...] = (),
        sign_with: Path | None = None,
    ) -> str:
        """A PR: a commit on `branch`, merged into main with --no-ff (a merge commit), pushed."""
        self.pull()
        self.run("checkout", "-q", "-b", branch)
        edit(self)
        self.commit(title)
        self.run("checkout", "-q", "main")
        trailers = "".join(f"\nApproved-by: {a}" for a in approvers)
        body = f"Merge pull request from {branch}\n\n{title}\n" + (f"{trailers}\n" if trailers else "")
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}"] if sign_with else []
        git(self.path, *signing, "merge", "-q", "--no-ff", *(["-S"] if sign_with else []), branch, "-m", body)
        self.push()
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


# -- the scripted executor --------------------------------------------------------------------------


@dataclass
class Behaviour:
    """How a scripted run of one (environment, model) ends."""

    metrics: dict[str, float] = field(default_factory=lambda: {"roc_auc": 0.99, "accuracy": 0.97})
    gates_pass: bool = True
    fail_task: str | None = None  # a task that exits with CHECK_FAILED_EXIT
    fail_message: str = "check failed"
    crash_task: str | None = None  # a task that crashes (exit 1: Errored)


class ScriptedExecutor:
    """A faithful-enough double of an executor: walks the manifest's DAG, answers per task."""

    name = "scripted"

    def __init__(self) -> None:
        self.behaviour: dict[tuple[str, str], Behaviour] = {}
        self.manifests: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, WorkflowRun] = {}
        self.on_wait: Callable[[str], None] | None = None
        self.submitted: list[str] = []
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0)

    def tasks(self, name: str) -> list[str]:
        return [t["name"] for t in _dag(self.manifests[name])]

    def submit(self, manifest: dict[str, Any]) -> str:
        name = manifest["metadata"]["name"]
        self.submitted.append(name)
        if name in self.runs:
            return name
        self.manifests[name] = manifest
        self.runs[name] = self._run(manifest)
        return name

    def poll(self, name: str) -> WorkflowRun:
        return self.runs[name]

    def get(self, name: str) -> WorkflowRun | None:
        return self.runs.get(name)

    def wait_for_finished(self, names: Any, timeout_s: float) -> bool:
        if self.on_wait is not None:
            hook, self.on_wait = self.on_wait, None
            hook(next(iter(names)))
        return True

    def stop(self, name: str, message: str = "") -> None:
        pass

    def _run(self, manifest: dict[str, Any]) -> WorkflowRun:
        labels = manifest["metadata"]["labels"]
        key = (labels["releasectl.dev/environment"], labels["releasectl.dev/model"])
        how = self.behaviour.get(key, Behaviour())
        now = self.clock()
        nodes: dict[str, NodeResult] = {}
        failed = False
        artifact = ""
        for task in _dag(manifest):
            name = task["name"]
            args = {p["name"]: p.get("value", "") for p in task.get("arguments", {}).get("parameters", [])}
            if failed:
                nodes[name] = NodeResult(name, task["template"], OMITTED)
                continue
            if (name == GATES_FAILED and how.gates_pass) or (name == DEPLOY and "when" in task and not how.gates_pass):
                nodes[name] = NodeResult(name, task["template"], SKIPPED)
                continue
            if how.fail_task == name or how.crash_task == name or name == GATES_FAILED:
                code = 1 if how.crash_task == name else CHECK_FAILED_EXIT
                message = "Traceback: boom" if code == 1 else f"releasectl-check-failed: {how.fail_message}"
                nodes[name] = NodeResult(name, task["template"], FAILED, message, code)
                failed = True
                continue
            outputs: dict[str, str] = {}
            if name == TRAIN:
                artifact = "sha256:" + hashlib.sha256(f"{manifest['metadata']['name']}".encode()).hexdigest()
                outputs[OUT_ARTIFACT] = artifact
            elif name == EVALUATE:
                artifact = args["artifact"] if not args["artifact"].startswith("{{") else artifact
                gates = [
                    {"metric": m, "op": ">=", "threshold": 0.9, "value": v, "passed": how.gates_pass, "kind": "gate"}
                    for m, v in how.metrics.items()
                ]
                outputs = {
                    OUT_METRICS: json.dumps(how.metrics),
                    OUT_GATES: json.dumps(gates),
                    OUT_PASSED: "true" if how.gates_pass else "false",
                    OUT_ARTIFACT: artifact,
                }
            elif name == DEPLOY:
                art = args["artifact"]
                outputs = {OUT_ARTIFACT: artifact if art.startswith("{{") else art, "report": "{}"}
            elif name == UNDEPLOY:
                outputs = {"report": "{}"}
            nodes[name] = NodeResult(
                name, task["template"], SUCCEEDED, outputs=outputs, exit_code=0, started=now, finished=now
            )
        phase = FAILED if failed else SUCCEEDED
        return WorkflowRun(manifest["metadata"]["name"], phase, "", now, now, nodes)


def _dag(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    entry = manifest["spec"]["entrypoint"]
    template = next(t for t in manifest["spec"]["templates"] if t["name"] == entry)
    return list(template["dag"]["tasks"])
