"""The long-running controller: triggers -> passes, health, leadership, signals. It never dies on input.

Place in the flow: the top of the loop, under the CLI (`releasectl reconcile --interval`). Triggers
are the poll timer, push webhooks (controller/loop/server.py) and the executor saying a run
finished; a burst of triggers coalesces into one pass. A pass is the reconciler's (it submits and
returns, so a pass is short). What the loop does with a pass's failure:
- an unreadable policy or any other PermanentError: nothing acts (nothing deploys under a policy
  the controller cannot read); /readyz says why, the metrics and the log say so; the loop keeps
  watching and the next valid policy resumes it (Flux's Stalled condition);
- a TransientError (remote or executor unreachable, a push that keeps failing): back off with
  jitter, 1 s doubling to the poll interval, then go on;
- anything else: logged in one line, treated as transient.
SIGTERM or SIGINT stops taking triggers; the pass in progress finishes its git writes (a pass never
leaves a half-written status); runs in flight are left to the executor and re-attached at the
next start.
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.errors import PermanentError, ReleasectlError
from controller.loop.metrics import Metrics
from controller.loop.reconciler import Log, NotLeader, PassResult, PolicyInvalid, Reconciler
from controller.ports import Leadership

BACKOFF_START_S = 1.0


@dataclass
class Health:
    """What /readyz answers from: the last pass that succeeded, and why the controller is not acting."""

    started: float = field(default_factory=time.monotonic)
    last_ok: float | None = None  # monotonic time of the last successful pass
    last_ok_wall: datetime | None = None
    problem: str | None = None  # why the last pass failed (or the controller is stalled), one line
    stalled: bool = False
    following: bool = False  # another replica leads

    def ready(self, interval_s: float, now: float | None = None) -> tuple[bool, str]:
        now = time.monotonic() if now is None else now
        if self.following:
            return True, "following: another replica holds the lease"
        if self.problem is not None:
            return False, self.problem
        if self.last_ok is None:
            return False, "no pass has completed yet"
        if now - self.last_ok > 3 * interval_s:
            return False, f"the last successful pass was {now - self.last_ok:.0f}s ago (interval {interval_s:g}s)"
        return True, "ok"


class Triggers:
    """Reasons to run a pass, coalesced: a burst of webhooks becomes one pass.

    A webhook's pass starts `debounce_s` after the first webhook of a burst, so the pushes of one
    merge (forges send several events) and a burst of merges share one fetch.
    """

    def __init__(self, debounce_s: float = 0.25) -> None:
        self._cond = threading.Condition()
        self._reasons: set[str] = set()
        self._stopped = False
        self.debounce_s = debounce_s

    def fire(self, reason: str) -> None:
        with self._cond:
            self._reasons.add(reason)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def wait(self, timeout_s: float) -> set[str]:
        """The reasons that came (empty on a timeout); returns at once when stopped."""
        with self._cond:
            if not self._reasons and not self._stopped:
                self._cond.wait(max(0.0, timeout_s))
            if any(r.startswith("webhook") for r in self._reasons) and not self._stopped:
                end = time.monotonic() + self.debounce_s
                while not self._stopped and (left := end - time.monotonic()) > 0:
                    self._cond.wait(left)
            reasons, self._reasons = self._reasons, set()
            return reasons


class Controller:
    def __init__(
        self,
        reconciler: Reconciler,
        *,
        interval_s: float = 60.0,
        resync_every: int = 10,
        leadership: Leadership | None = None,
        metrics: Metrics | None = None,
        log: Log | None = None,
        commit_time: Callable[[str], datetime | None] | None = None,
    ) -> None:
        self.rec = reconciler
        self.interval_s = interval_s
        self.resync_every = resync_every
        self.leadership = leadership
        self.metrics = metrics or Metrics()
        self.log: Log = log or reconciler.log
        self.commit_time = commit_time
        self.health = Health()
        self.triggers = Triggers()
        self.passes = 0
        self.history: collections.deque[tuple[int, frozenset[str]]] = collections.deque(maxlen=256)
        self._watched: tuple[str, ...] = ()
        self._watch_changed = threading.Event()
        if leadership is not None:
            reconciler.may_publish = leadership.is_leader

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, *, max_passes: int | None = None) -> int:
        """Pass on every trigger until stop(); 0 when stopped by a signal."""
        watcher = threading.Thread(target=self._watch_executor, name="executor-watch", daemon=True)
        watcher.start()
        if self.leadership is not None:
            self.leadership.start()
        delay = 0.0
        backoff = BACKOFF_START_S
        try:
            while not self.triggers.stopped:
                reasons = self.triggers.wait(delay)
                if self.triggers.stopped:
                    break
                if self.leadership is not None and not self.leadership.is_leader():
                    self.health.following = True
                    self.metrics.passes.labels("follower").inc()
                    delay = min(self.interval_s, 1.0)
                    continue
                self.health.following = False
                ok = self.one_pass(reasons or {"poll"})
                if ok:
                    backoff = BACKOFF_START_S
                    delay = self.interval_s
                else:
                    delay = min(self.interval_s, backoff) * (0.5 + random.random())  # noqa: S311 - jitter
                    backoff = min(backoff * 2, self.interval_s)
                if max_passes is not None and self.passes >= max_passes:
                    break
        finally:
            self.triggers.stop()
            self._watch_changed.set()
            if self.leadership is not None:
                self.leadership.release()
        return 0

    def stop(self, reason: str = "stop requested") -> None:
        self.log(f"stopping: {reason}; runs in flight are left to the executor")
        self.triggers.stop()
        self._watch_changed.set()

    def one_pass(self, reasons: set[str]) -> bool:
        """One pass with the loop's error handling; whether it succeeded."""
        self.passes += 1
        self.history.append((self.passes, frozenset(reasons)))
        full = self.resync_every > 0 and self.passes % self.resync_every == 0
        started = time.monotonic()
        try:
            result = self.rec.reconcile(full=full)
        except PolicyInvalid as exc:
            return self._failed("stalled", f"stalled: {exc}; nothing acts until the policy is valid", stalled=True)
        except NotLeader as exc:
            return self._failed("follower", str(exc), stalled=False)
        except PermanentError as exc:
            return self._failed("stalled", f"stalled: {exc}", stalled=True)
        except ReleasectlError as exc:
            return self._failed("transient", f"pass failed, retrying with backoff: {exc}", stalled=False)
        except Exception as exc:  # a bug must not end the loop: say it in one line and go on
            return self._failed("error", f"pass failed ({type(exc).__name__}): {exc}", stalled=False)
        finally:
            self.metrics.pass_seconds.observe(time.monotonic() - started)
            self._watch(tuple(f.name for f in self.rec.in_flight.values()))
        self._succeeded(result, reasons)
        return True

    def _failed(self, result: str, why: str, *, stalled: bool) -> bool:
        line = " ".join(why.split())[:1000]
        self.health.problem = line
        self.health.stalled = stalled
        self.metrics.passes.labels(result).inc()
        self.metrics.stalled.set(1 if stalled else 0)
        self.metrics.in_flight.set(len(self.rec.in_flight))
        self.log(f"error: {line}", level="error")
        return False

    def _succeeded(self, result: PassResult, reasons: set[str]) -> None:
        if self.health.stalled:
            self.log("resumed: the last pass succeeded")
        self.health.problem = None
        self.health.stalled = False
        self.health.last_ok = time.monotonic()
        self.health.last_ok_wall = datetime.now(UTC)
        m = self.metrics
        m.passes.labels("ok" if result.outcomes or result.submitted else "idle").inc()
        m.stalled.set(0)
        m.in_flight.set(result.in_flight)
        m.last_success.set(time.time())
        if result.push_retries:
            m.push_retries.inc(result.push_retries)
        for outcome in result.outcomes:
            m.outcomes.labels(outcome.phase.value, outcome.action.environment).inc()
        if self.commit_time is not None:
            for flight in result.submitted:
                with contextlib.suppress(Exception):
                    merged = self.commit_time(flight.action.source_commit)
                    if merged is not None:
                        m.merge_to_submission.observe(max(0.0, (datetime.now(UTC) - merged).total_seconds()))
        if result.outcomes or result.submitted:
            why = ", ".join(sorted(reasons))
            self.log(
                f"pass {self.passes} ({why}): {len(result.outcomes)} outcome(s), {len(result.submitted)} submitted, "
                f"{result.in_flight} in flight"
            )

    # -- executor events --------------------------------------------------------------------------

    def _watch(self, names: tuple[str, ...]) -> None:
        self._watched = names
        self._watch_changed.set()

    def _watch_executor(self) -> None:
        """Fire a pass as soon as a run in flight finishes (the executor's events, or its cheap poll)."""
        executor = self.rec.executor
        fired: tuple[str, ...] = ()
        while not self.triggers.stopped:
            names = self._watched
            if not names or (names == fired and self.health.problem is not None):
                # nothing to watch, or the pass that should collect keeps failing: its backoff decides
                self._watch_changed.wait(1.0)
                self._watch_changed.clear()
                continue
            try:
                if executor.wait_for_finished(names, 1.0) and not self.triggers.stopped:
                    fired = names
                    self.triggers.fire("run finished")
                    self._watch_changed.wait(self.interval_s)  # until the pass has collected it
                    self._watch_changed.clear()
            except Exception:  # the next pass reports the executor's trouble; keep watching
                time.sleep(1.0)
