"""Each benchmarked operation, timed through the controller's library API and as raw git plumbing.

Place in the flow: `make bench` -> bench/__main__.py runs this module once per repo size, in its
own process (`python -m bench.measure ...`) so that the peak RSS it reports is that of a
controller process that did all of the work below. The controller side is what a running
controller does in-process: ONE long-lived GitRepo (its `cat-file --batch` warm), ONE
SnapshotReader and ONE Reconciler. The git side (bench/rawgit.py) does the same work with
plumbing in a byte-identical copy of the controller's clone, in the same run, interleaved
repeat by repeat so both see the same machine. New commits on the remote come from
bench/generate.extend (fast-import onto the remote, as if another clone had pushed merged PRs).

Every measurement also checks the controller's answer (the bumped pin is the candidate, all pins
parse, history has the changes, ...), so a fast wrong answer cannot pass.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.generate import CACHE, ENVIRONMENTS, Shape, ensure, extend, status_record
from bench.rawgit import Plumbing
from controller.adapters.git import CONTROLLER, GitRepo, PendingCommit
from controller.app import queries
from controller.core.models import Plan
from controller.core.planner import plan
from controller.core.render import dumps
from controller.loop.reconciler import Reconciler, gather_evidence
from controller.loop.snapshot import Snapshot, SnapshotReader

ROOTS = ("environments", "status")
OPERATIONS = (
    "startup_scan",
    "startup_scan_lagging_trail",
    "idle_pass_local",
    "idle_pass_remote",
    "status_json",
    "history",
    "one_commit_pass",
    "catch_up",
    "status_commit_push",
    "status_commit_push_rejected",
    "idle_pass_remote_blocked",
)
Log = Callable[[str], None]


def _log(line: str) -> None:
    print(line, flush=True)


@dataclass
class Config:
    models: int = 1000
    merges: int = 20_000
    seed: int = 1
    catch_up: int = 1000
    repeats: float = 1.0  # multiplies every operation's repeat count (min 1)
    operations: tuple[str, ...] = OPERATIONS
    cache: Path = CACHE
    workdir: Path | None = None  # default: a temporary folder, removed afterwards

    @property
    def shape(self) -> Shape:
        return Shape(self.models, self.merges, self.seed)

    def n(self, base: int) -> int:
        return max(1, round(base * self.repeats))


@dataclass
class Result:
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, float] = field(default_factory=dict)


class _NoExecutor:
    """Planning only: a pass that wants to run a workflow here is a bench bug."""

    name = "bench"

    def submit(self, manifest: dict[str, Any]) -> str:
        raise AssertionError("the bench plans only; nothing may be submitted")

    def get(self, name: str) -> Any:
        raise AssertionError(name)

    def list(self, labels: Any) -> list[Any]:
        return []  # no runs in flight at this executor

    def finished(self, names: Any) -> dict[str, Any]:
        raise AssertionError(names)

    def wait_for_finished(self, names: Any, timeout_s: float) -> bool:
        raise AssertionError(names)

    def stop(self, name: str, message: str = "") -> None:
        raise AssertionError(name)

    def close(self) -> None:
        return None


def _clock(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=git_dir, check=True, capture_output=True, text=True).stdout.strip()


class Bench:
    """One repo size: the remote, the controller's clone, the raw clone, and the measurements."""

    def __init__(self, config: Config, work: Path, log: Log = _log) -> None:
        self.config = config
        self.log = log
        self.result = Result()
        cached, self.state = ensure(config.shape, config.cache, log)
        self.remote = work / "remote.git"
        started = time.perf_counter()
        shutil.copytree(cached, self.remote, symlinks=True)
        self.result.setup["copy_remote_s"] = time.perf_counter() - started
        t, self.repo = _clock(lambda: GitRepo.controller_clone(self.remote.as_uri(), work / "controller.git"))
        self.result.setup["controller_clone_s"] = t
        for key, value in (("gc.auto", "0"), ("maintenance.auto", "false")):
            _git(self.repo.path, "config", key, value)
        t, _ = _clock(lambda: _git(self.repo.path, "commit-graph", "write", "--reachable", "--changed-paths"))
        self.result.setup["commit_graph_s"] = t
        self.raw_dir = work / "raw.git"
        shutil.copytree(self.repo.path, self.raw_dir, symlinks=True)
        self.raw = Plumbing(self.raw_dir)
        self.rec = Reconciler(self.repo, _NoExecutor(), lambda action: {})
        self.infos: dict[str, Any] = {}  # commit infos, read once (the reconciler keeps the same cache)
        self.pins = config.shape.pins
        self.reserved = self.state.models[-1]
        self.commits = config.merges
        self.total_commits = int(_git(self.remote, "rev-list", "--count", "main"))
        self.now = datetime.now(UTC).replace(microsecond=0)
        log(
            f"[{self.pins} pins] set-up: controller clone {self.result.setup['controller_clone_s']:.1f} s, "
            f"commit-graph {self.result.setup['commit_graph_s']:.1f} s ({self.total_commits} commits)"
        )

    def close(self) -> None:
        self.raw.close()
        self.repo.close()

    # -- helpers ----------------------------------------------------------------------------------------

    def extend(self, merges: int, **kwargs: Any) -> list[tuple[str, str]]:
        """Merged PRs on the remote; they never touch the reserved model (see idle_with_blocked)."""
        return extend(self.remote, self.state, merges, exclude=frozenset({self.reserved}), **kwargs)

    def row(self, operation: str, ctl: list[float], raw: list[float], **extra: Any) -> dict[str, Any]:
        c, g = statistics.median(ctl), statistics.median(raw)
        row = {
            "operation": operation,
            "pins": self.pins,
            "commits": self.commits,
            "controller_s": round(c, 6),
            "git_s": round(g, 6),
            "ratio": round(c / g, 3) if g > 0 else None,
            "repeats": len(ctl),
            **extra,
        }
        self.result.rows.append(row)
        self.log(
            f"[{self.pins} pins] {operation:<40} controller {c * 1000:9.2f} ms   git {g * 1000:9.2f} ms   "
            f"ratio {row['ratio']}"
        )
        return row

    def paired(
        self, ctl: Callable[[], Any], raw: Callable[[], Any], repeats: int, warmup: int = 1
    ) -> tuple[list[float], list[float], Any]:
        """Interleaved repeats (controller, then git), after `warmup` untimed rounds of each."""
        cs, gs, value = [], [], None
        for i in range(warmup + repeats):
            value = None  # the previous answer must not inflate the peak RSS of the next one
            tc, value = _clock(ctl)
            tg, _ = _clock(raw)
            if i >= warmup:
                cs.append(tc)
                gs.append(tg)
        return cs, gs, value

    def plan_for(self, snap: Snapshot) -> Plan:
        """The planning half of a pass (reconcile_snapshot's first round): evidence, then plan."""
        assert snap.policy is not None
        evidence = gather_evidence(self.repo, snap, snap.candidates, now=self.now, cache=self.infos)
        return plan(snap.desired, snap.recorded, snap.policy, evidence)

    # -- 4. the level-triggered start-up scan -------------------------------------------------------------

    def startup_scan(self) -> None:
        head = self.repo.local_head()
        loads: list[float] = []

        def ctl() -> tuple[Snapshot, Plan]:
            reader = SnapshotReader(self.repo)  # cold parse caches, warm git: a controller that just started
            t, snap = _clock(lambda: reader.load(head))
            loads.append(t)
            return snap, self.plan_for(snap)

        def raw() -> int:
            return self.raw.cat.read_many(self.raw.ls_tree(head, ROOTS))

        cs, gs, (snap, p) = self.paired(ctl, raw, self.config.n(3))
        problems = [pr.line() for d in snap.desired.values() for pr in d.problems] + [x.line() for x in snap.problems]
        self.result.checks["startup_scan"] = {
            "pins": len(snap.desired),
            "statuses": len(snap.recorded),
            "valid": sum(1 for d in snap.desired.values() if d.valid),
            "problems": problems[:5],
            "actions": len(p.actions),
            "in_sync": len(p.in_sync),
        }
        assert len(snap.desired) == self.pins and not problems, self.result.checks["startup_scan"]
        load = statistics.median(loads[-len(cs) :])
        self.row("startup_scan", cs, gs, load_s=round(load, 6), plan_s=round(statistics.median(cs) - load, 6))
        # the controller has started: this is its snapshot from now on
        self.rec.snapshot = self.rec.reader.load(head)

    def startup_scan_lagging(self) -> None:
        """The same scan where most pins' outcomes lag (State.lagging_head): the source-commit search."""
        head = self.state.lagging_head
        if not head:
            return
        cs, gs, (snap, _p) = self.paired(
            lambda: (s := SnapshotReader(self.repo).load(head), self.plan_for(s)),
            lambda: self.raw.cat.read_many(self.raw.ls_tree(head, ROOTS)),
            self.config.n(1),
            warmup=0,
        )
        lagging = sum(
            1
            for k, d in snap.desired.items()
            if (r := snap.recorded.get(k)) and r.desired.source_commit != d.source_commit
        )
        assert len(snap.desired) == self.pins
        self.row(
            "startup_scan_lagging_trail",
            cs,
            gs,
            lagging_pins=lagging,
            note="start-up where most pins have no outcome for their last change",
        )

    # -- 1. idle passes ---------------------------------------------------------------------------------

    def idle(self) -> None:
        assert self.rec.snapshot is not None
        snap = self.rec.snapshot

        def local() -> Snapshot:
            return self.rec.reader.advance(snap, self.repo.local_head())

        cs, gs, advanced = self.paired(local, lambda: self.raw.rev_parse(self.raw.tracking), self.config.n(30), 3)
        assert advanced.head == snap.head and not advanced.candidates
        self.row("idle_pass_local", cs, gs, note="fetch excluded: tracking ref in-process + advance vs git rev-parse")

        def remote() -> Any:
            result = self.rec.reconcile()
            assert not result.outcomes and result.published is None
            return result

        cs, gs, _ = self.paired(remote, self.raw.ls_remote, self.config.n(15), 2)
        self.row("idle_pass_remote", cs, gs, note="fetch included: Reconciler.reconcile() vs git ls-remote")

    def idle_with_blocked(self) -> None:
        """An idle pass while one pin waits Blocked (production ahead of staging): common in life."""
        assert self.rec.snapshot is not None
        # catch up with the push section's commits without acting on them (the bench plans only)
        self.rec.snapshot = self.rec.reader.advance(self.rec.snapshot, self.repo.fetch())
        model = self.reserved  # no random PR touched it: all three of its pins are in sync
        key = f"production/{model}"
        self.extend(1, fresh=key)
        first = self.rec.reconcile()  # records the Blocked outcome (records only: no executor)
        phases = [(o.action.environment, o.action.model, o.phase.value) for o in first.outcomes]
        assert phases == [(*key.split("/"), "Blocked")], phases
        self.raw.fetch()

        def remote() -> Any:
            result = self.rec.reconcile()
            assert not result.outcomes and result.published is None
            return result

        cs, gs, _ = self.paired(remote, self.raw.ls_remote, self.config.n(15), 2)
        self.result.checks["idle_pass_remote_blocked"] = {
            "blocked": key,
            "pending": sorted(map("/".join, self.rec.snapshot.waiting if self.rec.snapshot else [])),
        }
        self.row(
            "idle_pass_remote_blocked",
            cs,
            gs,
            note="the same with one Blocked pin: ls-remote, then fetch + plan of the pending pins every poll",
        )

    # -- 6. status --format json --------------------------------------------------------------------------

    def status_json(self) -> None:
        head = self.repo.local_head()

        def ctl() -> str:
            return dumps(queries.status(self.repo, self.repo.tracking))

        cs, gs, text = self.paired(ctl, lambda: self.raw.cat.read_many(self.raw.ls_tree(head, ROOTS)), self.config.n(3))
        rows = json.loads(text)
        self.result.checks["status_json"] = {"rows": len(rows)}
        assert len(rows) == self.pins, len(rows)
        self.row("status_json", cs, gs, note="queries.status + render.dumps vs ls-tree + cat-file of every blob")

    # -- 5. history MODEL --env production -----------------------------------------------------------------

    def history(self) -> None:
        model = self.state.models[0]
        paths = (f"environments/production/{model}.yaml", f"status/production/{model}.yaml")
        tracking = self.repo.tracking

        def raw() -> int:
            changes = self.raw.log_raw(tracking, paths, "%x01%H%x00%P%x00%ae%x00%cI%x00%B%x00")
            return self.raw.cat.read_many({b for p, b in changes if p.startswith("environments/")})

        def split() -> int:
            """The best plumbing can do on git 2.39: one log per path, each using the Bloom filters."""
            fmt = "%x01%H%x00%P%x00%ae%x00%cI%x00%B%x00"
            changes = [c for path in paths for c in self.raw.log_raw(tracking, (path,), fmt)]
            return self.raw.cat.read_many({b for p, b in changes if p.startswith("environments/")})

        cs, gs, rows = self.paired(
            lambda: queries.history(self.repo, model, "production", rev=tracking), raw, self.config.n(5)
        )
        ss = [_clock(split)[0] for _ in range(self.config.n(5))]
        changes = [r for r in rows if r.kind != "outcome"]
        self.result.checks["history"] = {"model": model, "rows": len(rows), "changes": len(changes)}
        assert changes and changes[-1].version == self.state.versions[f"production/{model}"], rows[-3:]
        self.row(
            "history",
            cs,
            gs,
            model=model,
            rows=len(rows),
            git_split_s=round(statistics.median(ss), 6),
            note="queries.history vs ONE git log of both paths + cat-file; git_split_s: one log per path",
        )

    # -- 2. and 3. a pass after new merged commits (planning only) --------------------------------------

    def _pass_after(self, merges: int, pins_per_merge: int | None) -> dict[str, Any]:
        assert self.rec.snapshot is not None
        old_raw = self.raw.rev_parse(self.raw.tracking)
        bumps = self.extend(merges, pins_per_merge=pins_per_merge)
        # the controller: fetch, then advance + evidence + plan (no executor, no push)
        t0 = time.perf_counter()
        head = self.repo.fetch()
        t1 = time.perf_counter()
        snap = self.rec.reader.advance(self.rec.snapshot, head)
        p = self.plan_for(snap)
        t2 = time.perf_counter()
        self.rec.snapshot = snap
        # git: fetch, then the changed blobs of the range through one cat-file --batch
        g0 = time.perf_counter()
        new_raw = self.raw.fetch()
        g1 = time.perf_counter()
        if merges == 1:
            blobs = self.raw.diff_tree(old_raw, new_raw, ROOTS)
        else:
            blobs = [b for _p, b in self.raw.log_raw(f"{old_raw}..{new_raw}", ROOTS)]
        self.raw.cat.read_many(dict.fromkeys(blobs))
        g2 = time.perf_counter()
        assert new_raw == head
        return {
            "ctl": t2 - t1,
            "ctl_fetch": t2 - t0,
            "git": g2 - g1,
            "git_fetch": g2 - g0,
            "bumps": bumps,
            "snap": snap,
            "plan": p,
        }

    def one_commit(self) -> None:
        runs = [self._pass_after(1, 1) for _ in range(1 + self.config.n(9))][1:]
        last = runs[-1]
        (key, version), snap, p = last["bumps"][0], last["snap"], last["plan"]
        env, model = key.split("/")
        action_keys = sorted({f"{a.environment}/{a.model}" for a in p.actions})
        self.result.checks["one_commit_pass"] = {
            "bumped": key,
            "candidate_models": sorted({m for _e, m in snap.candidates or ()}),
            "desired_version": snap.desired[(env, model)].version,
            "actions": action_keys,
        }
        assert snap.candidates == frozenset((e, model) for e in ENVIRONMENTS), snap.candidates
        assert snap.desired[(env, model)].version == version and key in action_keys
        self.row(
            "one_commit_pass",
            [r["ctl"] for r in runs],
            [r["git"] for r in runs],
            note="advance + gather_evidence + plan vs diff-tree + cat-file",
        )
        self.row(
            "one_commit_pass_with_fetch",
            [r["ctl_fetch"] for r in runs],
            [r["git_fetch"] for r in runs],
            note="the same with the fetch (git fetch on both sides)",
        )

    def catch_up(self) -> None:
        n = self.config.catch_up
        runs = [self._pass_after(n, None) for _ in range(self.config.n(3))]
        last = runs[-1]
        final: dict[str, str] = {}
        for key, version in last["bumps"]:
            final[key] = version
        snap = last["snap"]
        missing = [k for k in final if tuple(k.split("/")) not in (snap.candidates or ())]
        wrong = [k for k, v in final.items() if snap.desired[tuple(k.split("/"))].version != v]  # type: ignore[index]
        self.result.checks["catch_up"] = {
            "new_commits": n,
            "pins_changed": len(final),
            "candidates": len(snap.candidates or ()),
            "missing": missing[:5],
            "wrong_version": wrong[:5],
            "actions": len(last["plan"].actions),
        }
        assert not missing and not wrong, self.result.checks["catch_up"]
        self.row(
            "catch_up",
            [r["ctl"] for r in runs],
            [r["git"] for r in runs],
            new_commits=n,
            note="advance + gather_evidence + plan vs ONE git log --raw + cat-file of every new blob",
        )
        self.row("catch_up_with_fetch", [r["ctl_fetch"] for r in runs], [r["git_fetch"] for r in runs], new_commits=n)

    # -- 7. one status commit and push ----------------------------------------------------------------

    def _status(self, i: int) -> tuple[str, bytes, str]:
        assert self.rec.snapshot is not None
        key = f"production/{self.state.models[-1]}"
        env, model = key.split("/")
        previous = self.rec.snapshot.recorded.get((env, model))
        source = self.rec.snapshot.desired[(env, model)].source_commit
        version = self.rec.snapshot.desired[(env, model)].version
        when = datetime.fromtimestamp(1_900_000_000 + i, UTC)
        _status, path, data, text = status_record(key, version, source, self.rec.snapshot.head, previous, when)
        return path, data, text

    def push(self) -> None:
        identity = CONTROLLER.env()
        counter = [0]

        def material() -> tuple[str, bytes, str]:
            counter[0] += 1
            return self._status(counter[0])

        def ctl_ff() -> float:
            base = self.repo.fetch()
            path, data, text = material()
            t, head = _clock(lambda: self.repo.publish(base, [PendingCommit(((path, data),), text)]))
            assert self.repo.remote_head() == head
            return t

        def raw_ff() -> float:
            base = self.raw.fetch()
            path, data, text = material()

            def go() -> None:
                sha = self.raw.commit_file(base, path, self.raw.hash_object(data), text, identity)
                assert self.raw.push(sha)

            return _clock(go)[0]

        self._push_rows(
            "status_commit_push",
            ctl_ff,
            raw_ff,
            self.config.n(7),
            note="GitRepo.publish vs hash-object/read-tree/update-index/write-tree/commit-tree/push",
        )

        def ctl_rejected(backoff: float | None) -> Callable[[], float]:
            def run() -> float:
                base = self.repo.fetch()
                self.extend(1, pins_per_merge=1)  # someone merged meanwhile
                path, data, text = material()
                retries: list[int] = []
                kwargs: dict[str, Any] = {"on_retry": retries.append}
                if backoff is not None:
                    kwargs["backoff_s"] = backoff
                pending = [PendingCommit(((path, data),), text)]
                t, head = _clock(lambda: self.repo.publish(base, pending, **kwargs))
                assert retries == [1] and self.repo.remote_head() == head, retries
                return t

            return run

        def raw_rejected() -> float:
            base = self.raw.fetch()
            self.extend(1, pins_per_merge=1)
            path, data, text = material()

            def go() -> None:
                blob = self.raw.hash_object(data)
                assert not self.raw.push(self.raw.commit_file(base, path, blob, text, identity))
                again = self.raw.fetch()
                assert self.raw.push(self.raw.commit_file(again, path, blob, text, identity))

            return _clock(go)[0]

        self._push_rows(
            "status_commit_push_rejected",
            ctl_rejected(None),
            raw_rejected,
            self.config.n(5),
            note="publish (default backoff) vs push, rejected, fetch, re-commit, push",
        )
        self._push_rows(
            "status_commit_push_rejected_no_backoff",
            ctl_rejected(0.0),
            raw_rejected,
            self.config.n(5),
            note="the same with publish(backoff_s=0): the sleep taken out",
        )

    def _push_rows(
        self, name: str, ctl: Callable[[], float], raw: Callable[[], float], repeats: int, **extra: Any
    ) -> None:
        cs, gs = [], []
        for i in range(1 + repeats):
            tc, tg = ctl(), raw()
            if i:
                cs.append(tc)
                gs.append(tg)
        self.row(name, cs, gs, **extra)

    # -- all of it --------------------------------------------------------------------------------

    def run(self) -> Result:
        ops = set(self.config.operations)
        self.startup_scan()  # also the controller's start: every other operation needs its snapshot
        if "startup_scan_lagging_trail" in ops:
            self.startup_scan_lagging()
        if ops & {"idle_pass_local", "idle_pass_remote"}:
            self.idle()
        if "status_json" in ops:
            self.status_json()
        if "history" in ops:
            self.history()
        if "one_commit_pass" in ops:
            self.one_commit()
        if "catch_up" in ops:
            self.catch_up()
        if ops & {"status_commit_push", "status_commit_push_rejected"}:
            self.push()
        if "idle_pass_remote_blocked" in ops:
            self.idle_with_blocked()
        rss_mb = peak_rss_mb()
        self.result.rows.append(
            {"operation": "peak_rss", "pins": self.pins, "commits": self.commits, "controller_mb": round(rss_mb, 1)}
        )
        self.log(f"[{self.pins} pins] peak RSS of this controller process: {rss_mb:.0f} MB")
        return self.result


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM of its own memory map (Linux), else ru_maxrss.

    ru_maxrss survives execve, so a child of a big process would report its parent's peak;
    VmHWM starts afresh with the exec'd program.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(config: Config, log: Log = _log) -> Result:
    """Set up one repo size in a work folder, measure every operation, clean up."""
    with tempfile.TemporaryDirectory(prefix="releasectl-bench-", dir=config.workdir) as tmp:
        bench = Bench(config, Path(tmp), log)
        try:
            result = bench.run()
        finally:
            bench.close()
        result.setup["total_commits"] = bench.total_commits
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="measure one repo size (see bench/__main__.py)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--merges", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--catch-up", type=int, default=1000)
    parser.add_argument("--repeats", type=float, default=1.0)
    parser.add_argument("--operations", default=",".join(OPERATIONS))
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path, required=True, help="where to write rows, checks and set-up")
    args = parser.parse_args(argv)
    config = Config(
        models=args.models,
        merges=args.merges,
        seed=args.seed,
        catch_up=args.catch_up,
        repeats=args.repeats,
        operations=tuple(o for o in args.operations.split(",") if o),
        cache=args.cache,
    )
    result = run(config)
    args.json.write_text(json.dumps({"rows": result.rows, "checks": result.checks, "setup": result.setup}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
