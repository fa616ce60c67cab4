"""`releasectl demo`: the main job, end to end, on one machine.

Place in the flow: above everything else; it plays both sides. As the platform team it builds a
release repo (a bare file:// remote seeded from the project's environments/) and runs the
controller with the LocalExecutor (real scikit-learn training, real skops artifacts, a real
local serving target). As a data scientist it opens and merges pull requests with plain git: a
promotion, a production bump that policy blocks, and a `git revert` that rolls back without
training. Then it prints the history and the status, from git alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.adapters.git import GitRepo
from controller.app import queries
from controller.app.audit import audit
from controller.app.progress import Progress
from controller.app.runtime import Home, compiler, local_executor
from controller.core.audit_render import markdown
from controller.core.models import Phase
from controller.core.render import history_table, status_table, table
from controller.loop.reconciler import PassResult, Reconciler

PROJECT = Path(__file__).resolve().parents[2]
USER = ("Dana Scientist", "dana@example.com")


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": USER[0],
        "GIT_AUTHOR_EMAIL": USER[1],
        "GIT_COMMITTER_NAME": USER[0],
        "GIT_COMMITTER_EMAIL": USER[1],
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


class Demo:
    def __init__(self, root: Path, out: Callable[[str], None]) -> None:
        self.root = root
        self.out = out
        self.home = Home(root / "home")
        self.remote = root / "releases.git"
        self.user = root / "dana"
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.out(text)

    def chapter(self, title: str) -> None:
        self.out(f"\n== {title}  [{time.monotonic() - self.started:.1f}s]")

    # -- the user's side --------------------------------------------------------------------------

    def make_release_repo(self) -> None:
        source = PROJECT / "environments"
        if not (source / "policy.yaml").is_file():
            raise SystemExit(f"releasectl demo needs the example release set at {source}: run it from a clone")
        seed = self.root / "seed"
        shutil.copytree(source, seed / "environments")
        _git(self.root, "init", "-q", "-b", "main", str(seed))
        _git(seed, "add", "-A")
        _git(seed, "commit", "-q", "-m", "Initial release set: three models in dev, staging and production")
        _git(self.root, "clone", "-q", "--bare", str(seed), str(self.remote))
        shutil.rmtree(seed)
        _git(self.root, "clone", "-q", self.remote.as_uri(), str(self.user))
        _git(self.user, "config", "user.name", USER[0])  # Dana's own clone commits as Dana
        _git(self.user, "config", "user.email", USER[1])

    def merge_pr(self, branch: str, title: str) -> str:
        """Merge `branch` into main with a merge commit, as a PR would, and push."""
        self.pull()
        _git(self.user, "merge", "-q", "--no-ff", branch, "-m", f"Merge pull request: {title}")
        _git(self.user, "push", "-q", "origin", "main")
        return _git(self.user, "rev-parse", "HEAD")

    def pull(self) -> None:
        _git(self.user, "checkout", "-q", "main")
        _git(self.user, "pull", "-q", "--ff-only", "origin", "main")

    # -- the controller's side --------------------------------------------------------------------

    def reconcile(self, rec: Reconciler, *, full: bool = False) -> PassResult:
        result = rec.settle(full=full)
        for outcome in result.outcomes:
            if outcome.phase is not Phase.DEPLOYED:
                continue
            a = outcome.action
            how = "rollback, no training" if a.kind.value == "rollback" else ("trained" if a.trains else "reused")
            self.say(
                f"  -> {a.environment}/{a.model} {a.version} Deployed ({how}; {outcome.artifact[:19]}…)"
                if outcome.artifact
                else f"  -> {a.environment}/{a.model} {a.version} Deployed"
            )
        return result


def run_demo(
    *, keep: bool = False, workdir: str | None = None, out: Callable[[str], None] | None = None, verbose: bool = False
) -> int:
    say = out or (lambda line: print(line, flush=True))
    root = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="releasectl-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    # one line per workflow state change (a status line on a terminal); every step with -v
    progress = Progress(say, verbose=verbose, live=sys.stdout if out is None and sys.stdout.isatty() else None)
    demo = Demo(root, progress.log)
    try:
        return _story(demo, progress)
    finally:
        progress.close()
        if keep or workdir:
            say(f"\nThe demo's release repo, clones and home are in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _story(demo: Demo, progress: Progress) -> int:
    say = demo.say
    demo.chapter("1. A release repo: three models pinned in dev, staging and production")
    demo.make_release_repo()
    say(f"  remote {demo.remote.as_uri()} (a bare git repo); Dana's clone in {demo.user}")
    for line in _git(demo.user, "ls-files", "environments").splitlines():
        say(f"    {line}")

    with local_executor(demo.home, on_event=progress.event) as executor:
        repo = GitRepo.controller_clone(demo.remote.as_uri(), demo.home.workdir(demo.remote.as_uri()))
        rec = Reconciler(repo, executor, compiler(demo.home), log=lambda line, **_fields: say(f"  {line}"))

        demo.chapter("2. The controller's first pass adopts every pin (real training, skops artifacts)")
        first = demo.reconcile(rec, full=True)
        _metrics(demo, first)

        demo.chapter("3. Dana promotes tumor-classifier 1.1.0 from dev to staging (a PR, merged)")
        from controller.app.userops import promote

        made = promote(GitRepo(demo.user), "tumor-classifier", "dev", "staging")
        say(f"  releasectl promote tumor-classifier --from dev --to staging -> branch {made.ref}")
        promotion = demo.merge_pr(made.ref, "promote tumor-classifier 1.1.0 to staging")
        say(f"  merged as {promotion[:12]}")
        demo.reconcile(rec)

        demo.chapter("4. A production bump that staging has not run yet is Blocked by policy")
        demo.pull()
        pin = demo.user / "environments/production/digits-classifier.yaml"
        dev_pin = (demo.user / "environments/dev/digits-classifier.yaml").read_text()
        _git(demo.user, "checkout", "-q", "-b", "bump-digits-production")
        pin.write_text(dev_pin)
        _git(demo.user, "commit", "-q", "-am", "Bump digits-classifier in production to 0.3.0")
        demo.merge_pr("bump-digits-production", "digits-classifier 0.3.0 to production")
        blocked = demo.reconcile(rec)
        for outcome in blocked.outcomes:
            say(f"  -> {outcome.action.environment}/{outcome.action.model} {outcome.phase.value}: {outcome.reason}")

        demo.chapter("5. Dana rolls staging back with `git revert`: redeployed without training")
        demo.pull()
        _git(demo.user, "revert", "--no-edit", "-m", "1", promotion)
        _git(demo.user, "push", "-q", "origin", "main")
        say(f"  git revert -m 1 {promotion[:12]} -> {_git(demo.user, 'rev-parse', 'HEAD')[:12]}")
        demo.reconcile(rec)

        demo.chapter("6. The live model answers over HTTP (KServe v1 protocol), from the local serving target")
        _predict(demo)

    demo.pull()
    user_repo = GitRepo(demo.user)
    demo.chapter("7. releasectl history tumor-classifier --env staging   (from git alone)")
    say(history_table(queries.history(user_repo, "tumor-classifier", "staging")))
    demo.chapter("8. releasectl status")
    say(status_table(queries.status(user_repo)))
    demo.chapter("9. The audit trail: git log --first-parent, and the last status commit in full")
    say(_git(demo.user, "log", "--first-parent", "-8", "--format=%h %<(24,trunc)%ae %s"))
    say("")
    say(_git(demo.user, "log", "-1", "--format=%B", "--", "status"))
    demo.chapter("10. releasectl audit --verify   (the promotion record and its chain, from git alone)")
    report = audit(user_repo, verify=True)
    text = markdown(report)
    say(text.split("\n## ", 2)[0] + "\n" + "\n".join(f"  {b.line()}" for b in report.breaks or []))
    say("  the chain verifies: no breaks" if not report.breaks else "  the chain has breaks")
    say(f"\nDone in {time.monotonic() - demo.started:.1f}s.")
    return 0 if not report.breaks else 1


def _metrics(demo: Demo, result: PassResult) -> None:
    rows = []
    for o in result.outcomes:
        m = o.metrics
        rows.append(
            [
                o.action.model,
                o.action.environment,
                o.action.version,
                o.phase.value,
                *(f"{m[k]:.3f}" if k in m else "-" for k in ("accuracy", "roc_auc", "f1_macro", "p95_latency_ms")),
            ]
        )
    demo.say(table(["MODEL", "ENV", "VERSION", "PHASE", "ACCURACY", "ROC_AUC", "F1", "P95 MS"], rows))


def _predict(demo: Demo) -> None:
    from workflows.serving import make_server

    server: Any = make_server(demo.home.serving, demo.home.store, "staging", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        import urllib.request

        from sklearn.datasets import load_breast_cancer

        row = load_breast_cancer().data[0].tolist()
        port = server.server_address[1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/tumor-classifier:predict",
            data=json.dumps({"instances": [row]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
        demo.say(f"  POST http://127.0.0.1:{port}/v1/models/tumor-classifier:predict -> {json.dumps(answer)}")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    sys.exit(run_demo())
