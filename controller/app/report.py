"""What `reconcile --once` tells its user, and the one exit-code rule of a pass.

Place in the flow: after a pass, in the CLI. It turns the PassResult (each outcome's phase and
reason) and the status files at the head the pass published into lines for people, a JSON
document for machines, and the exit code:

- 0 when the pass completed, whatever the outcomes: they are recorded in the trail (Failed,
  Blocked and Rejected are answers, not crashes of the controller);
- 1 with `--fail-on PHASES` when a pin ends the pass in one of those phases (`Invalid` stands for
  a file that cannot be a pin at all), for CI jobs that want a red mark; also 1 when the policy
  is invalid, since then no pass can run;
- 2 usage, 3 a runtime failure (remote, push or executor), from the CLI's error funnel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.adapters.git import GitRepo
from controller.app import queries
from controller.core.models import Phase
from controller.errors import UsageError, redact
from controller.loop.reconciler import PassResult

INVALID = "Invalid"  # --fail-on's name for files that cannot be pins (not recorded in the trail)


def parse_phases(text: str) -> frozenset[str]:
    """`Failed,Errored` -> the phases; any case; an unknown name is a usage error."""
    known = {p.value.lower(): p.value for p in Phase} | {INVALID.lower(): INVALID}
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w.lower() not in known]
    if unknown:
        raise UsageError(f"--fail-on: unknown phase {unknown[0]!r} (phases: {', '.join(known.values())})")
    return frozenset(known[w.lower()] for w in wanted)


@dataclass
class Summary:
    head: str
    published: str | None
    push_retries: int
    outcomes: list[dict[str, Any]]
    problems: list[str]
    not_in_sync: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "published": self.published,
            "push_retries": self.push_retries,
            "outcomes": self.outcomes,
            "problems": self.problems,
            "not_in_sync": self.not_in_sync,
        }

    def lines(self) -> list[str]:
        out = []
        for o in self.outcomes:
            reason = f": {o['reason']}" if o["reason"] and o["phase"] != Phase.DEPLOYED.value else ""
            out.append(f"{o['environment']}/{o['model']} {o['version']}: {o['phase']}{reason}")
        if self.published:
            out.append(f"recorded {len(self.outcomes)} outcome(s); pushed {self.published[:12]}")
        else:
            out.append(f"nothing new to record at {self.head[:12]}")
        for row in self.not_in_sync:
            live = f"live {row['live']}" if row["live"] else "nothing live"
            reason = f": {row['reason']}" if row["reason"] else ""
            out.append(f"not in sync: {row['environment']}/{row['model']} {row['phase']} ({live}){reason}")
        if not self.not_in_sync and not self.problems:
            out.append("every pin is live as desired")
        return out


def summarize(repo: GitRepo, result: PassResult) -> Summary:
    outcomes = [
        {
            "environment": o.action.environment,
            "model": o.action.model,
            "version": o.action.version,
            "phase": o.phase.value,
            "reason": redact(o.reason),
            "artifact": o.artifact,
        }
        for o in result.outcomes
    ]
    rows = queries.status(repo, result.head if repo.status_branch else (result.published or result.head))
    waiting = [
        {k: row[k] for k in ("environment", "model", "desired", "live", "phase", "reason")}
        for row in rows
        if row["desired"] is not None and not (row["in_sync"] and row["phase"] == Phase.DEPLOYED.value)
    ]
    problems = [p.line() for p in result.problems]
    return Summary(result.head, result.published, result.push_retries, outcomes, problems, waiting)


def exit_code(summary: Summary, fail_on: frozenset[str]) -> int:
    """The rule (module docstring): 0 when the pass completed, unless --fail-on names a phase a pin has."""
    phases = {str(row["phase"]) for row in summary.not_in_sync}
    if summary.problems:
        phases.add(INVALID)
    return 1 if phases & fail_on else 0


def controller_repo(args: Any) -> GitRepo:
    """The controller's bare clone that `reconcile` used (its --workdir, else under --home)."""
    from controller.app.runtime import Home

    return GitRepo(args.workdir or Home.resolve(args.home).workdir(args.repo))
