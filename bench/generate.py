"""A synthetic release repo at monorepo scale, written by ONE `git fast-import` process.

Place in the flow: the first step of `make bench` (bench/__main__.py -> ensure() here), and the
"someone merged a PR" step of every measurement that needs new commits on the remote (extend()).
Nothing here is the controller: it writes what users and a running controller would have written
over years, in the real formats, so that the controller parses it for real.

- environments/policy.yaml: order dev, staging, production; staging requires dev, production
  requires staging.
- environments/<env>/<model>.yaml: ModelPin v1 (a recipe and params from controller.core.models.RECIPES,
  `seed` included). A version's training spec is a function of (model, version), so the same version
  means the same spec in every environment, as the controller requires.
- First-parent history of main: the initial release set, the controller's adoption (one status
  commit per pin), then `merges` merge commits, each merging a side commit that bumps 1-3 pins
  (a new patch version in dev, or a promotion dev -> staging -> production), with an
  `Approved-by:` trailer. After every `status_every - 1` merges comes a status round: 1-3 status
  commits by the controller's identity, one file each exactly as the reconciler writes them
  (controller.core.trail.next_status / render_status / message, with every `Releasectl-*` trailer),
  recording outcomes of the pins the previous window of merges changed, with
  `Releasectl-Reconciled:` the head the controller had fetched then (PRs merged while it worked
  sit in between, as in life).
- Since 1-3 outcomes per round cannot keep up with ~2 pin changes per merge, most changes in
  that history have no outcome. A running controller records every change, so the history ends
  with one more round that records the outcome of every pin whose status lags (the controller in
  sync at the head, which is what a restart finds). State.lagging_head keeps the head before
  that round: a start-up there takes the controller's slow path for pins whose source commit it
  must search for (bench reports it on its own row).

Commit shas the status files must cite (source commit, reconciled head) are read back from
fast-import with `get-mark`. The repo and the generator's state (versions per pin) are cached
under bench/.cache/<shape>/ so a second `make bench` reuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from controller.adapters.git import CONTROLLER
from controller.core.models import (
    Action,
    ActionKind,
    GateResult,
    ModelPin,
    ModelStatus,
    Outcome,
    Phase,
    WorkflowRef,
)
from controller.core.paths import status_path
from controller.core.pins import parse_pin, parse_policy
from controller.core.trail import message, next_status, render_status

GENERATOR_VERSION = 2
ENVIRONMENTS = ("dev", "staging", "production")
CACHE = Path(__file__).resolve().parent / ".cache"
EPOCH = 1_640_995_200  # 2022-01-01T00:00:00Z
STEP_S = 600  # ten minutes between commits

POLICY = b"""# yaml-language-server: $schema=../schemas/PromotionPolicy.json
# Synthetic release repo for `make bench`: dev feeds staging feeds production.
apiVersion: releasectl/v1
kind: PromotionPolicy
order: [dev, staging, production]
environments:
  dev: {}
  staging:
    requires: dev
  production:
    requires: staging
rollback_requires_approval: false
"""

PIN = """# yaml-language-server: $schema=../../schemas/ModelPin.json
apiVersion: releasectl/v1
kind: ModelPin
model: {model}
version: {version}
owner: {owner}
training:
  recipe: {recipe}
  dataset: {{name: {dataset}, sha256: {sha256}}}
  params: {{{params}}}
evaluation:
  gates: {{roc_auc: ">= 0.90", accuracy: ">= 0.85", p95_latency_ms: "<= 50"}}
  max_regression: {{accuracy: 0.02}}
deployment:
  strategy: {strategy}
"""

DOMAINS = ("fraud", "churn", "ranking", "search", "ads", "vision", "speech", "credit", "tumor", "wine", "digits")
TASKS = ("classifier", "regressor", "ranker", "scorer", "detector")
DATASETS = ("breast-cancer", "wine", "digits", "iris", "diabetes", "covtype")
STRATEGIES = ("direct", "canary", "blue-green")
RECIPE_NAMES = ("gradient-boosting", "random-forest", "logistic-regression")
USERS = tuple((f"Engineer {i:02d}", f"eng{i:02d}@example.com") for i in range(24))


@dataclass(frozen=True)
class Shape:
    """The size of a synthetic release repo; its cache folder is named after it."""

    models: int
    merges: int
    seed: int = 1
    status_every: int = 5

    @property
    def pins(self) -> int:
        return self.models * len(ENVIRONMENTS)

    @property
    def name(self) -> str:
        shape = f"m{self.models}-e{len(ENVIRONMENTS)}-c{self.merges}-s{self.seed}"
        return f"{shape}-v{GENERATOR_VERSION}-f{format_fingerprint()}"


def model_name(index: int) -> str:
    return f"{DOMAINS[index % len(DOMAINS)]}-{TASKS[(index // len(DOMAINS)) % len(TASKS)]}-{index:04d}"


def model_index(model: str) -> int:
    return int(model.rsplit("-", 1)[1])


def _params(index: int, patch: int) -> str:
    recipe = RECIPE_NAMES[index % len(RECIPE_NAMES)]
    seed = 1 + (index * 7 + patch) % 97
    if recipe == "gradient-boosting":
        return f"n_estimators: {50 + patch % 200}, learning_rate: 0.1, max_depth: {2 + patch % 4}, seed: {seed}"
    if recipe == "random-forest":
        return f"n_estimators: {20 + patch % 300}, max_depth: {3 + patch % 5}, min_samples_leaf: 2, seed: {seed}"
    return f"C: {0.1 + (patch % 10) / 10:.1f}, max_iter: {200 + patch % 5 * 100}, seed: {seed}"


def pin_text(model: str, version: str) -> bytes:
    """The pin of `model` at `version`: the training spec is a function of (model, version)."""
    index = model_index(model)
    patch = int(version.rsplit(".", 1)[1])
    return PIN.format(
        model=model,
        version=version,
        owner=f"team-{index % 40:02d}@example.com",
        recipe=RECIPE_NAMES[index % len(RECIPE_NAMES)],
        dataset=DATASETS[index % len(DATASETS)],
        sha256=hashlib.sha256(f"{model}@{version}".encode()).hexdigest(),
        params=_params(index, patch),
        strategy=STRATEGIES[index % len(STRATEGIES)],
    ).encode()


@lru_cache(maxsize=65536)
def model_pin(model: str, version: str) -> ModelPin:
    """The pin parsed and validated by the controller's own parser (never a hand-made dict)."""
    parsed = parse_pin(f"environments/dev/{model}.yaml", pin_text(model, version), model)
    if isinstance(parsed, list):
        raise AssertionError(f"generated pin {model} {version} is invalid: {[p.line() for p in parsed]}")
    return parsed


def _version(patch: int) -> str:
    return f"1.0.{patch}"


@lru_cache(maxsize=1)
def format_fingerprint() -> str:
    """A hash of what the controller writes (a sample status file and commit message) and of a pin.

    Part of the cache folder's name: when the controller changes its status format, the next
    `make bench` generates a new repo instead of measuring files the controller no longer writes.
    """
    when = datetime(2024, 1, 1, tzinfo=UTC)
    model = model_name(0)
    _status, path, data, text = status_record(f"dev/{model}", _version(3), "0" * 40, "1" * 40, None, when)
    return hashlib.sha256(path.encode() + data + text.encode() + pin_text(model, _version(3))).hexdigest()[:8]


# -- generator state (JSON, cached next to the repo) ----------------------------------------------


@dataclass
class State:
    """What the generator must remember to continue a repo: versions per pin and counters."""

    models: list[str]
    versions: dict[str, str]  # "env/model" -> version pinned at the head of main
    next_patch: dict[str, int]
    pr: int = 0
    clock: int = EPOCH
    merges: int = 0
    status_commits: int = 0
    head: str = ""
    lagging_head: str = ""  # the head before the final catch-up of the status trail
    seed: int = 1
    rng_state: Any = None

    def save(self, path: Path) -> None:
        data = {k: v for k, v in self.__dict__.items() if k != "rng_state"}
        path.write_text(json.dumps(data, indent=0, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> State:
        return cls(**json.loads(path.read_text()))

    def tick(self) -> int:
        self.clock += STEP_S
        return self.clock


# -- fast-import ------------------------------------------------------------------------------------


class FastImport:
    """One `git fast-import` process; `sha(mark)` asks it for a commit's sha (`get-mark`)."""

    def __init__(self, git_dir: Path) -> None:
        self.proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--done", "--date-format=raw"],
            cwd=git_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.buf: list[bytes] = []
        self.size = 0
        self.mark = 0
        self.commits = 0
        self.requested: deque[int] = deque()
        self.shas: dict[int, str] = {}

    def _write(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.buf.append(chunk)
            self.size += len(chunk)
        if self.size > 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.stdin.write(b"".join(self.buf))
        self.stdin.flush()
        self.buf.clear()
        self.size = 0

    def blob(self, data: bytes) -> int:
        self.mark += 1
        self._write(b"blob\nmark :%d\ndata %d\n" % (self.mark, len(data)), data, b"\n")
        return self.mark

    def commit(
        self,
        ref: str,
        who: tuple[str, str],
        when: int,
        text: str,
        parents: Iterable[str | int],
        files: Iterable[tuple[str, int]],
    ) -> int:
        self.mark += 1
        self.commits += 1
        msg = text.encode()
        ident = f"{who[0]} <{who[1]}> {when} +0000\n".encode()
        head = b"commit %s\nmark :%d\nauthor %scommitter %sdata %d\n" % (
            ref.encode(),
            self.mark,
            ident,
            ident,
            len(msg),
        )
        lines = [head, msg, b"\n"]
        for i, parent in enumerate(parents):
            ref_text = f":{parent}" if isinstance(parent, int) else parent
            lines.append(f"{'from' if i == 0 else 'merge'} {ref_text}\n".encode())
        for path, blob in files:
            lines.append(f"M 100644 :{blob} {path}\n".encode())
        lines.append(b"\n")
        self._write(*lines)
        return self.mark

    def request(self, mark: int) -> None:
        """Ask for a mark's sha now, read the answer later (keeps fast-import and Python overlapped)."""
        self._write(b"get-mark :%d\n" % mark)
        self.requested.append(mark)

    def sha(self, mark: int) -> str:
        if mark in self.shas:
            return self.shas[mark]
        if mark not in self.requested:
            self.request(mark)
        self.flush()
        while mark not in self.shas:
            self.shas[self.requested.popleft()] = self.stdout.readline().decode().strip()
        return self.shas[mark]

    def done(self) -> None:
        self._write(b"done\n")
        self.flush()
        self.stdin.close()
        if self.proc.wait() != 0:
            raise RuntimeError("git fast-import failed")


# -- writing history --------------------------------------------------------------------------------


@dataclass
class Writer:
    """Appends to main through one FastImport; remembers which commit set each pin."""

    fi: FastImport
    state: State
    rng: random.Random
    main: str | int  # the current tip: a sha (existing repo) or a mark
    source: dict[str, int] = field(default_factory=dict)  # "env/model" -> mark of the merge that set it
    statuses: dict[str, ModelStatus] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)  # "env/model" -> merge mark its status cites
    last_merge: int = 0
    track: bool = True  # ask fast-import for each merge's sha (status rounds cite them)
    exclude: frozenset[str] = frozenset()  # models random PRs never touch

    def initial(self) -> None:
        files = [("environments/policy.yaml", self.fi.blob(POLICY))]
        for model in self.state.models:
            for env in ENVIRONMENTS:
                key = f"{env}/{model}"
                files.append((f"environments/{key}.yaml", self.fi.blob(pin_text(model, self.state.versions[key]))))
        who = USERS[0]
        mark = self.fi.commit("refs/heads/main", who, self.state.tick(), "Initial release set\n", [], files)
        self.main = mark
        for model in self.state.models:
            for env in ENVIRONMENTS:
                self.source[f"{env}/{model}"] = mark

    def _bump(self, key: str) -> str:
        env, model = key.split("/")
        versions = self.state.versions
        if env == "staging" and versions[f"dev/{model}"] != versions[key]:
            return versions[f"dev/{model}"]
        if env == "production" and versions[f"staging/{model}"] != versions[key]:
            return versions[f"staging/{model}"]
        patch = self.state.next_patch[model]
        self.state.next_patch[model] = patch + 1
        return _version(patch)

    def merge(self, count: int | None = None, fresh: str | None = None) -> tuple[int, list[tuple[str, str]]]:
        """One PR: a side commit bumping 1-3 pins, merged with --no-ff. Returns (mark, bumps).

        `fresh` ("env/model"): the PR pins a brand-new version there instead (skipping the
        environments before it, so that the policy blocks it).
        """
        n = count if count is not None else self.rng.choice((1, 1, 2, 2, 3))
        pool = [m for m in self.state.models if m not in self.exclude] if self.exclude else self.state.models
        models = [] if fresh else self.rng.sample(pool, n)
        bumps: list[tuple[str, str]] = []
        if fresh:
            model = fresh.split("/")[1]
            patch = self.state.next_patch[model]
            self.state.next_patch[model] = patch + 1
            self.state.versions[fresh] = _version(patch)
            bumps.append((fresh, _version(patch)))
        for model in models:
            env = self.rng.choices(ENVIRONMENTS, weights=(5, 3, 2))[0]
            key = f"{env}/{model}"
            version = self._bump(key)
            if version == self.state.versions[key]:  # nothing to promote: a new dev version instead
                key = f"dev/{model}"
                version = self._bump(key)
            self.state.versions[key] = version
            bumps.append((key, version))
        files = [(f"environments/{key}.yaml", self.fi.blob(pin_text(key.split("/")[1], v))) for key, v in bumps]
        self.state.pr += 1
        who = USERS[self.rng.randrange(1, len(USERS))]
        reviewer = USERS[(USERS.index(who) + 1) % len(USERS)]
        title = ", ".join(f"{k.split('/')[1]} {v} in {k.split('/')[0]}" for k, v in bumps)
        branch = f"{who[1].split('@')[0]}/pr-{self.state.pr}"
        side = self.fi.commit("refs/heads/bench-side", who, self.state.tick(), f"Pin {title}\n", [self.main], files)
        body = (
            f"Merge pull request #{self.state.pr} from {branch}\n\nPin {title}\n\n"
            f"Approved-by: {reviewer[0]} <{reviewer[1]}>\n"
        )
        mark = self.fi.commit("refs/heads/main", who, self.state.tick(), body, [self.main, side], files)
        if self.track:
            self.fi.request(mark)
        self.main = self.last_merge = mark
        self.state.merges += 1
        for key, _ in bumps:
            self.source[key] = mark
        return mark, bumps

    def status_round(
        self, bumps: list[tuple[str, str, int]], reconciled: int, how_many: int | None = None, *, adopted: bool = False
    ) -> None:
        """1-3 status commits (one file each) for the newest of `bumps` (env/model, version, merge mark).

        `reconciled` is the head the controller had fetched: the last merge of the window it acted
        on. PRs that merged while it worked sit between that head and these commits, as in life.
        """
        n = how_many if how_many is not None else self.rng.choice((1, 1, 2, 3))
        picked: dict[str, tuple[str, int]] = {}
        for key, version, mark in reversed(bumps):
            if len(picked) == n:
                break
            picked.setdefault(key, (version, mark))
        head = self.fi.sha(reconciled)
        for key, (version, mark) in picked.items():
            self._status_commit(key, version, self.fi.sha(mark), head, adopted=adopted)
            self.recorded[key] = mark

    def sync(self) -> int:
        """The controller catches up at the head: an outcome for every pin whose status lags."""
        stale = [(k, self.state.versions[k], m) for k, m in self.source.items() if self.recorded.get(k) != m]
        self.status_round(stale[::-1], self.last_merge, len(stale))
        return len(stale)

    def _status_commit(self, key: str, version: str, source: str, reconciled: str, *, adopted: bool) -> None:
        now = datetime.fromtimestamp(self.state.tick(), UTC)
        failed = not adopted and self.rng.random() < 0.08
        status, path, data, text = status_record(
            key, version, source, reconciled, self.statuses.get(key), now, failed=failed, adopted=adopted
        )
        self.statuses[key] = status
        blob = self.fi.blob(data)
        who = (CONTROLLER.name, CONTROLLER.email)
        self.main = self.fi.commit("refs/heads/main", who, int(now.timestamp()), text, [self.main], [(path, blob)])
        self.state.status_commits += 1


def status_record(
    key: str,
    version: str,
    source: str,
    reconciled: str,
    previous: ModelStatus | None,
    now: datetime,
    *,
    failed: bool = False,
    adopted: bool = False,
) -> tuple[ModelStatus, str, bytes, str]:
    """One outcome as the reconciler records it: (status, path, file bytes, commit message).

    Built with the controller's own next_status / render_status / message, so the bytes and the
    trailers are exactly what a running controller writes.
    """
    env, model = key.split("/")
    pin = model_pin(model, version)
    digest = pin.spec_digest()
    action = Action(
        kind=ActionKind.DEPLOY,
        environment=env,
        model=model,
        version=version,
        source_commit=source,
        spec_digest=digest,
        pin=pin,
        live=previous.live if previous else None,
        adopted=adopted,
        reason="adopted: first pass over a repository without a status trail" if adopted else "",
    )
    score = 0.91 + zlib.crc32(f"{key}@{version}".encode()) % 800 / 10_000
    gates = (
        GateResult(metric="roc_auc", op=">=", threshold=0.90, value=0.80 if failed else score, passed=not failed),
        GateResult(metric="accuracy", op=">=", threshold=0.85, value=score - 0.03, passed=True),
        GateResult(metric="p95_latency_ms", op="<=", threshold=50, value=3.1, passed=True),
    )
    artifact = "sha256:" + hashlib.sha256(f"artifact:{digest}".encode()).hexdigest()
    outcome = Outcome(
        action=action,
        phase=Phase.FAILED if failed else Phase.DEPLOYED,
        reason="gate roc_auc >= 0.9 failed with 0.8" if failed else "",
        artifact=artifact,
        metrics={g.metric: float(g.value or 0) for g in gates},
        gates=gates,
        workflow=WorkflowRef(
            name=action.workflow_name, executor="local", started=now - timedelta(minutes=4), finished=now
        ),
    )
    status = next_status(outcome, previous, now)
    return status, status_path(env, model), render_status(status), message(outcome, status, reconciled).text()


def _new_state(shape: Shape) -> State:
    models = [model_name(i) for i in range(shape.models)]
    versions: dict[str, str] = {}
    for model in models:
        versions[f"dev/{model}"] = _version(2)
        versions[f"staging/{model}"] = _version(1)
        versions[f"production/{model}"] = _version(0)
    return State(models=models, versions=versions, next_patch=dict.fromkeys(models, 3), seed=shape.seed)


def _git(git_dir: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=git_dir, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def generate(shape: Shape, target: Path, log: Any = print) -> State:
    """Write a new bare repo at `target` (replaced if it exists); returns the generator state."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(target)], check=True)
    state = _new_state(shape)
    rng = random.Random(shape.seed)
    fi = FastImport(target)
    writer = Writer(fi, state, rng, main="")
    started = time.perf_counter()
    writer.initial()
    assert isinstance(writer.main, int)
    initial = writer.main
    # adoption: the controller's first pass records one Deployed outcome per pin
    everything = [(f"{env}/{m}", state.versions[f"{env}/{m}"], initial) for m in state.models for env in ENVIRONMENTS]
    writer.status_round(everything[::-1], initial, len(everything), adopted=True)
    window: list[tuple[str, str, int]] = []
    previous: tuple[list[tuple[str, str, int]], int] | None = None
    for i in range(shape.merges):
        mark, bumps = writer.merge()
        window.extend((key, version, mark) for key, version in bumps)
        if (i + 1) % (shape.status_every - 1) == 0 or i + 1 == shape.merges:
            if previous is not None:
                writer.status_round(*previous)
            previous, window = (window, mark), []
        if (i + 1) % 2000 == 0:
            log(f"  generate {shape.name}: {i + 1}/{shape.merges} merges ({time.perf_counter() - started:.0f} s)")
    if previous is not None:
        writer.status_round(*previous)
    assert isinstance(writer.main, int)
    state.lagging_head = fi.sha(writer.main)
    synced = writer.sync()
    log(f"  generate {shape.name}: final status round for {synced} pins whose outcome lagged")
    assert isinstance(writer.main, int)
    state.head = fi.sha(writer.main)
    fi.done()
    _git(target, "update-ref", "-d", "refs/heads/bench-side")
    _git(target, "config", "gc.auto", "0")
    _git(target, "config", "receive.autogc", "false")
    _git(target, "commit-graph", "write", "--reachable", "--changed-paths")
    return state


def ensure(shape: Shape, cache: Path = CACHE, log: Any = print) -> tuple[Path, State]:
    """The cached repo of `shape` (generated on first use) and a fresh copy of its state."""
    folder = cache / shape.name
    repo, state_file = folder / "remote.git", folder / "state.json"
    if not state_file.exists():
        started = time.perf_counter()
        log(f"generating {shape.name} ({shape.pins} pins, {shape.merges} merges) with git fast-import ...")
        state = generate(shape, repo, log)
        state.save(state_file)
        log(f"  generated in {time.perf_counter() - started:.1f} s: {describe(repo)}")
    else:
        log(f"reusing {folder} ({describe(repo)})")
    return repo, State.load(state_file)


def describe(repo: Path) -> str:
    total = _git(repo, "rev-list", "--count", "main")
    first = _git(repo, "rev-list", "--count", "--first-parent", "main")
    merges = _git(repo, "rev-list", "--count", "--first-parent", "--merges", "main")
    size = sum(p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file())
    return f"{total} commits, {first} first-parent, {merges} merges, {size / 2**20:.0f} MiB of objects"


def extend(
    repo: Path,
    state: State,
    merges: int,
    *,
    pins_per_merge: int | None = None,
    fresh: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """`merges` more merged PRs on main of `repo` (the remote), as another clone would push them.

    Returns every (env/model, version) bumped, oldest first. No status commits: the controller
    has not seen these yet. `fresh`: see Writer.merge; `exclude`: models left alone.
    """
    head = _git(repo, "rev-parse", "main")
    rng = random.Random(f"{state.seed}:{state.pr}:{head}")
    fi = FastImport(repo)
    writer = Writer(fi, state, rng, main=head, track=False, exclude=exclude)
    bumps: list[tuple[str, str]] = []
    for _ in range(merges):
        _mark, changed = writer.merge(pins_per_merge, fresh)
        bumps.extend(changed)
    assert isinstance(writer.main, int)
    state.head = fi.sha(writer.main)
    fi.done()
    _git(repo, "update-ref", "-d", "refs/heads/bench-side")
    return bumps


def check_sample(repo: Path, count: int = 50) -> int:
    """Parse `count` pins and statuses at the head with the controller's parsers; returns how many."""
    from controller.core.trail import parse_status

    listing = _git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    policy = parse_policy(
        subprocess.run(
            ["git", "show", "main:environments/policy.yaml"], cwd=repo, capture_output=True, check=True
        ).stdout
    )
    assert not isinstance(policy, list), policy
    checked = 0
    for path in [p for p in listing if p.startswith(("environments/dev", "status/"))][:count]:
        data = subprocess.run(
            ["git", "cat-file", "blob", f"main:{path}"], cwd=repo, capture_output=True, check=True
        ).stdout
        if path.startswith("status/"):
            assert parse_status(data) is not None, path
        else:
            assert not isinstance(parse_pin(path, data, Path(path).stem), list), path
        checked += 1
    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--merges", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    repo, _state = ensure(Shape(args.models, args.merges, args.seed), args.cache)
    print(f"{repo}: {check_sample(repo)} sampled files parse", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
