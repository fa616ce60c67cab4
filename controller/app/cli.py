"""`releasectl`: parse, call the library, print, map errors to exit codes. Nothing else.

Place in the flow: the outermost layer. One error funnel: a ReleasectlError becomes one red
line on stderr and its exit code (0 ok, 1 a check said no, 2 usage, 3 a runtime failure);
anything unexpected becomes one line too, with the traceback only under --traceback (accepted
before or after the subcommand). Every command that prints a result takes `--format json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from controller import __version__
from controller.errors import ReleasectlError, UsageError, redact

Handler = Callable[[argparse.Namespace], int]
WORKTREE = "WORKTREE"
HOME_HELP = "state folder (default: $RELEASECTL_HOME or ~/.local/share/releasectl)"


def _red(text: str) -> str:
    return f"\033[31m{text}\033[0m" if sys.stderr.isatty() and not os.environ.get("NO_COLOR") else text


def say(line: str) -> None:
    print(redact(line), file=sys.stderr, flush=True)  # no URL credentials in any line, ever


def _repo(args: argparse.Namespace) -> Any:
    from controller.adapters.git import GitRepo

    repo = GitRepo(args.repo)
    repo.status_branch = _status_branch(getattr(args, "status_branch", None))
    return repo


def _status_branch(name: str | None, people: str = "main") -> str | None:
    """A branch name for the trail: plain ref characters, not the people's branch."""
    import re

    if name is None:
        return None
    plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", name)
    if not plain or ".." in name or "//" in name or name.endswith((".", "/", ".lock")):
        raise UsageError(f"--status-branch {name!r}: not a branch name (letters, digits, . _ / -)")
    if name == people:
        raise UsageError(f"--status-branch {name}: the trail needs a branch of its own, not {people}")
    return name


def _signing_key(path: str) -> str:
    """An ssh private key to sign status commits with: it must exist and be readable."""
    from pathlib import Path

    key = Path(path).expanduser().resolve()
    if not key.is_file() or not os.access(key, os.R_OK):
        raise UsageError(f"--signing-key {path}: not a readable file (an ssh private key, e.g. ssh-keygen -t ed25519)")
    return str(key)


def _json(value: object) -> None:
    from controller.core.render import dumps

    print(dumps(value))


# -- commands -------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.app import queries

    rev = None if args.rev == WORKTREE else args.rev
    result = queries.validate(_repo(args), rev, args.base)
    if args.format == "json":
        _json({"read": result.read, "pins": result.pins, "problems": [p.__dict__ for p in result.problems]})
    else:
        for problem in result.problems:
            print(problem.line())
        say(
            f"{result.pins} pin(s) in {result.environments} environment(s) of {result.read}: "
            f"{len(result.problems)} problem(s)"
        )
    return 1 if result.problems else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.core.models import ActionKind
    from controller.core.render import plan_dict, plan_text

    shown = queries.plan_view(_repo(args), args.rev, args.base)
    if args.format == "json":
        _json(plan_dict(shown))
    else:
        for line in shown.problems:
            print(line)
        print(plan_text(shown))
    said_no = any(a.kind in (ActionKind.BLOCK, ActionKind.REJECT) for a in shown.plan.actions) or shown.plan.waiting
    return 1 if said_no or shown.problems else 0


def cmd_status(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.app.inflight import local_runs, overlay
    from controller.app.runtime import Home
    from controller.core.render import status_table

    rows = overlay(queries.status(_repo(args), args.rev, args.env), local_runs(Home.resolve(args.home).runs))
    if args.format == "json":
        _json(rows)
    else:
        print(status_table(rows))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.core.render import history_table

    rows = queries.history(_repo(args), args.model, args.env, args.rev)
    if args.format == "json":
        _json([r.as_dict() for r in rows])
    else:
        print(history_table(rows))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from controller.app import userops

    made = userops.rollback(_repo(args), args.model, args.env)
    if args.format == "json":
        _json(made.as_dict())
        return 0
    print(f"{made.sha}  {made.summary}")
    say(f"committed on your current branch {made.ref}; push it (or open a PR): {made.next_step}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from controller.app.retry import retry

    made = retry(_repo(args), args.model, args.env)
    if args.format == "json":
        _json(made.as_dict())
        return 0
    print(f"{made.sha}  {made.summary}")
    say(f"committed on {made.ref}; push it (or open a PR) and the controller runs the change again")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from controller.app import userops

    made = userops.promote(_repo(args), args.model, args.source, args.target, args.branch)
    if args.format == "json":
        _json(made.as_dict())
        return 0
    print(f"{made.sha}  {made.summary}")
    say(f"your current branch is unchanged; push the new branch and open a PR: git push origin {made.ref}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from controller.app.approve import approve

    made = approve(_repo(args), args.model, args.env, args.source)
    if args.format == "json":
        _json(made.as_dict())
        return 0
    print(f"{made.sha}  {made.summary}")
    say(f"committed on {made.ref}; push it (or merge it like any change): the next pass counts it")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from controller.app.audit import audit, parse_date
    from controller.core.audit_render import html_page, markdown

    report = audit(
        _repo(args),
        args.rev,
        environment=args.env,
        model=args.model,
        since=parse_date(args.since, "--since"),
        until=parse_date(args.until, "--until"),
        verify=args.verify,
        controller=args.controller,
    )
    if args.format == "json":
        print(report.model_dump_json(indent=2, by_alias=True))
    elif args.format == "html":
        sys.stdout.write(html_page(report))
    else:
        sys.stdout.write(markdown(report))
    if report.breaks:
        for item in report.breaks:
            say(item.line())
        return 1
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from controller.app import report
    from controller.app.run import run_forever, run_once
    from controller.loop.reconciler import PolicyInvalid

    fail_on = report.parse_phases(args.fail_on)
    if args.signing_key:
        args.signing_key = _signing_key(args.signing_key)
    args.status_branch = _status_branch(args.status_branch, args.branch)
    if args.interval is not None or args.listen:
        return run_forever(args)
    try:
        result = run_once(args)
    except PolicyInvalid:
        return 1  # the reconciler has said each problem once, as an error line
    ctl = report.controller_repo(args)
    ctl.status_branch = args.status_branch
    summary = report.summarize(ctl, result)
    if args.format == "json":
        _json(summary.as_dict())
    else:
        for line in summary.lines():
            print(line)
    return report.exit_code(summary, fail_on)


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.app.runtime import Home
    from workflows.serving import serve

    home = Home.resolve(args.home)
    serve(home.serving, home.store, args.env, args.host, args.port)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from controller.app.runtime import Home
    from controller.core.render import table
    from workflows.datasets import catalog

    rows = catalog(Home.resolve(args.home).data if args.home else None)
    if args.format == "json":
        _json(rows)
    else:
        body = [
            [r["name"], r["rows"], r["features"], r["classes"], r["target"], r["source"], r["sha256"]] for r in rows
        ]
        print(table(["NAME", "ROWS", "FEATURES", "CLASSES", "TARGET", "SOURCE", "SHA256"], body))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from controller.core.render import table
    from workflows.recipes import describe

    rows = describe()
    if args.format == "json":
        _json(rows)
    else:
        params = [", ".join(f"{k}:{v}" for k, v in r["params"].items()) for r in rows]
        print(
            table(
                ["RECIPE", "FROM", "PARAMS"], [[r["name"], r["source"], p] for r, p in zip(rows, params, strict=True)]
            )
        )
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from controller.app import drift
    from controller.app.runtime import Home
    from controller.core.render import table

    results = drift.check(
        _repo(args),
        Home.resolve(args.home),
        args.env,
        model=args.model,
        since=args.since,
        dataset_sha256=args.dataset_sha256,
        open_branch=not args.no_branch,
    )
    found = any(r.decision is not None and r.decision.drifted for r in results)
    if args.format == "json":
        _json({"environment": args.env, "drift": found, "models": [r.as_dict() for r in results]})
    else:
        rows: list[list[str]] = []
        for r in results:
            d = r.decision
            worst = d.features[0] if d and d.features else None
            drifted = ", ".join(f.feature for f in d.drifted) if d else ""
            what = r.branch or r.note or ("drift found (--no-branch)" if d and d.drifted else "")
            psi_ks = f"{worst.psi:.3f} / {worst.ks:.3f}" if worst else "-"
            rows.append([r.model, r.live_version or "-", str(d.samples if d else 0), psi_ks, drifted or "-", what])
        print(table(["MODEL", "LIVE", "SAMPLES", "WORST PSI / KS", "DRIFTED", "OUTCOME"], rows))
        for r in results:
            if r.branch:
                say(f"{r.model}: proposed on branch {r.branch} (pushed); review and merge it to retrain")
    return 1 if found else 0


def cmd_check(args: argparse.Namespace) -> int:
    from controller.app.smoke import SmokeOptions, check_smoke
    from controller.core.smoke import render_table

    if not args.smoke:
        raise UsageError("check: say which tier to run: --smoke (the PR tier; the merge tier is reconcile)")
    if not 0 < args.fraction <= 1:
        raise UsageError(f"--fraction {args.fraction:g}: must be in (0, 1]")
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be a positive number of seconds")
    options = SmokeOptions(fraction=args.fraction, timeout_s=args.timeout)
    report = check_smoke(_repo(args), args.rev, args.base, options)
    if args.format == "json":
        _json(report.as_dict())
    else:
        print(render_table(report))
        say(report.summary())
    return report.exit_code(args.fail_at_risk)


def cmd_completion(args: argparse.Namespace) -> int:
    from controller.app.completion import script

    print(script(parser(), args.shell), end="")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from controller.app import reproduce
    from controller.app.runtime import Home

    home = Home.resolve(args.home)
    report = reproduce.reproduce(_repo(args), args.model, args.env, args.store or home.store, home.data)
    if args.format == "json":
        _json(report)
    else:
        print(reproduce.table(report))
    return 0 if report["match"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.app.demo import run_demo

    return run_demo(keep=args.keep, workdir=args.workdir, verbose=args.verbose)


# -- parsing --------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout and shows every flag's default that is not already said."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and action.option_strings
            and default not in (None, False, argparse.SUPPRESS)
            and action.nargs != 0
        ):
            text += " (default: %(default)s)"
        return text


def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="releasectl",
        description="GitOps promotion controller for ML models.",
        formatter_class=_Formatter,
        epilog=_example("releasectl validate && releasectl plan", "releasectl status --env production"),
    )
    p.add_argument("--version", action="version", version=f"releasectl {__version__}")
    p.add_argument("--traceback", action="store_true", help="show a traceback on errors (also after the subcommand)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str, *examples: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=_Formatter, epilog=_example(*examples)
        )
        cmd.set_defaults(handler=handler)
        # SUPPRESS: only a flag given here sets it, so `releasectl --traceback CMD` keeps working too
        cmd.add_argument(
            "--traceback", action="store_true", default=argparse.SUPPRESS, help="show a traceback on errors"
        )
        return cmd

    def fmt(cmd: argparse.ArgumentParser, formats: Sequence[str] = ("text", "json")) -> None:
        cmd.add_argument("--format", choices=formats, default=formats[0], help="output for people or for machines")

    def repo_opts(cmd: argparse.ArgumentParser, formats: Sequence[str], rev: str = "HEAD") -> None:
        cmd.add_argument("--repo", default=".", metavar="PATH", help="a local clone of the release repo")
        what = "the files in the working tree" if rev == WORKTREE else "HEAD"
        cmd.add_argument("--rev", default=rev, metavar="REV", help=f"the commit to read (default: {what})")
        fmt(cmd, formats)
        cmd.add_argument("--status-branch", metavar="NAME", help="read the status trail from this branch")

    demo = add(
        "demo",
        cmd_demo,
        "the main job on one machine: real training, status commits, a bump, a revert",
        "releasectl demo -v --keep",
    )
    demo.add_argument("--workdir", metavar="DIR", help="where to build the demo (default: a new temporary folder)")
    demo.add_argument("--keep", action="store_true", help="keep the demo folder afterwards")
    demo.add_argument("-v", "--verbose", action="store_true", help="print every workflow step, not only workflows")

    rec = add(
        "reconcile",
        cmd_reconcile,
        "the controller: fetch, plan, run workflows, record outcomes, push",
        "releasectl reconcile --repo file:///srv/releases.git --once --fail-on Failed,Errored",
    )
    from controller.app.cluster_wiring import add_cluster_arguments
    from controller.app.run import add_reconcile_arguments

    add_reconcile_arguments(rec)
    add_cluster_arguments(rec)
    rec.add_argument(
        "--fail-on",
        metavar="PHASES",
        default="",
        help="exit 1 when a pin ends the pass in one of these phases, e.g. Failed,Errored,Blocked "
        "(default: none: exit 0 whenever the pass completed)",
    )
    rec.add_argument(
        "--signing-key",
        metavar="PATH",
        help="ssh private key that signs every status commit (list its public key for the controller's "
        "identity in environments/allowed_signers)",
    )
    rec.add_argument(
        "--status-branch",
        metavar="NAME",
        help="keep the status trail on this branch (only status/ changes), leaving --branch to people and PRs",
    )

    val = add(
        "validate",
        cmd_validate,
        "PR check: schema, names, policy of the files in front of you; one file:field: message line each",
        "releasectl validate                       # the working tree, like a linter",
        "releasectl validate --rev HEAD --base origin/main   # a PR's commits, only the files it changed",
    )
    repo_opts(val, ["text", "json"], rev=WORKTREE)
    val.add_argument("--base", metavar="REV", help="report only files changed since this revision (default: all)")

    pl = add(
        "plan",
        cmd_plan,
        "what reconcile would do, and why",
        "releasectl plan --repo . --format json",
    )
    repo_opts(pl, ["text", "json"])
    pl.add_argument("--base", metavar="REV", help="the last reconciled revision (default: from the status trail)")

    st = add("status", cmd_status, "desired vs live per model and environment", "releasectl status --env production")
    repo_opts(st, ["table", "json"])
    st.add_argument("--env", metavar="ENV", help="only this environment (default: all)")
    st.add_argument(
        "--home",
        metavar="DIR",
        help="the local controller's state, for runs in flight (default: $RELEASECTL_HOME "
        "or ~/.local/share/releasectl)",
    )

    hi = add(
        "history",
        cmd_history,
        "every pin change and outcome of a model, from git alone",
        "releasectl history tumor-classifier --env production",
    )
    hi.add_argument("model", help="the model (the pin's file stem)")
    hi.add_argument("--env", metavar="ENV", help="only this environment (default: all)")
    repo_opts(hi, ["table", "json"])

    rb = add(
        "rollback",
        cmd_rollback,
        "commit, on your CURRENT branch, a git revert of the last change of a pin (never rewrites history)",
        "releasectl rollback tumor-classifier --env staging && git push",
    )
    rb.add_argument("model", help="the model (the pin's file stem)")
    rb.add_argument("--env", required=True, metavar="ENV", help="the environment whose pin is rolled back")
    rb.add_argument("--repo", default=".", metavar="PATH", help="your working clone")
    fmt(rb)

    rt = add(
        "retry",
        cmd_retry,
        "ask for a Failed outcome to run again: a commit on your CURRENT branch (push it or open a PR)",
        "releasectl retry tumor-classifier --env staging && git push",
    )
    rt.add_argument("model", help="the model whose outcome failed")
    rt.add_argument("--env", required=True, metavar="ENV", help="the environment where it failed")
    rt.add_argument("--repo", default=".", metavar="PATH", help="your working clone")
    rt.add_argument("--status-branch", metavar="NAME", help="read the outcome from the trail on this branch (fetched)")
    fmt(rt)

    pr = add(
        "promote",
        cmd_promote,
        "commit, on a NEW branch (your current one is untouched), a copy of a pin to another environment",
        "releasectl promote tumor-classifier --from dev --to staging && git push origin promote/...",
    )
    pr.add_argument("model", help="the model (the pin's file stem)")
    pr.add_argument("--from", dest="source", required=True, metavar="ENV", help="the environment to copy from")
    pr.add_argument("--to", dest="target", required=True, metavar="ENV", help="the environment to promote to")
    pr.add_argument("--branch", help="name of the new branch (default: promote/<model>-<to>-<version>)")
    pr.add_argument("--repo", default=".", metavar="PATH", help="your working clone")
    fmt(pr)

    ap = add(
        "approve",
        cmd_approve,
        "approve a merged change: a commit (signed when your git signs) naming the change, environment and model",
        "releasectl approve tumor-classifier --env production && git push",
    )
    ap.add_argument("model", help="the model (the pin's file stem)")
    ap.add_argument("--env", required=True, metavar="ENV", help="the environment of the change")
    ap.add_argument("--source", metavar="COMMIT", help="the commit that set the pin (default: its last change)")
    ap.add_argument("--repo", default=".", metavar="PATH", help="your working clone")
    fmt(ap)

    au = add(
        "audit",
        cmd_audit,
        "the promotion record from git alone: changes, approvals, gates, evidence, figures",
        "releasectl audit --env production --since 2026-11-01 > audit.md",
        "releasectl audit --format html > audit.html",
        "releasectl audit --verify",
    )
    au.add_argument("--repo", default=".", metavar="PATH", help="a local clone of the release repo")
    au.add_argument("--rev", default="HEAD", metavar="REV", help="the commit to read (default: HEAD)")
    au.add_argument("--env", metavar="ENV", help="one environment")
    au.add_argument("--model", metavar="MODEL", help="one model")
    au.add_argument("--since", metavar="DATE", help="changes from this date (YYYY-MM-DD or ISO 8601)")
    au.add_argument("--until", metavar="DATE", help="changes up to this date")
    au.add_argument("--format", choices=["md", "json", "html"], default="md", help="md for a PR, json, or html")
    au.add_argument("--verify", action="store_true", help="check the chain; exit 1 with one line per break")
    au.add_argument(
        "--controller", default="releasectl@noreply.invalid", metavar="EMAIL", help="the controller's email"
    )
    au.add_argument("--status-branch", metavar="NAME", help="read the status trail from this branch")

    sv = add(
        "serve",
        cmd_serve,
        "serve an environment's live models over HTTP (KServe v1 protocol)",
        "releasectl serve --env staging --port 8080",
    )
    sv.add_argument("--env", required=True, metavar="ENV", help="the environment whose live models are served")
    sv.add_argument(
        "--home", metavar="DIR", help="state folder (default: $RELEASECTL_HOME or ~/.local/share/releasectl)"
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=int, default=8080, help="port to listen on")

    ds = add(
        "datasets",
        cmd_datasets,
        "the datasets a pin can name: rows, features, target and the full sha256 to pin",
        "releasectl datasets --format json",
    )
    ds.add_argument("--home", metavar="DIR", help="also list the snapshots in this home's catalog (default: built-ins)")
    fmt(ds, ("table", "json"))

    rc = add(
        "recipes",
        cmd_recipes,
        "the training recipes a pin can name (built in and from the releasectl.recipes entry points)",
        "releasectl recipes",
    )
    fmt(rc, ("table", "json"))

    dr = add(
        "drift",
        cmd_drift,
        "compare the inputs an environment served with its live models' training data (PSI, KS); "
        "on drift push a branch that bumps the first environment's pin onto a refreshed snapshot. "
        "Exit 0 no drift, 1 drift found (and a branch opened), 2 usage, 3 failure",
        "releasectl drift --env production --since 24h",
        "releasectl drift --env production --format json   # a scheduled job",
        "releasectl drift --env production --model tumor-classifier --dataset-sha256 <64 hex>",
    )
    dr.add_argument("--env", required=True, metavar="ENV", help="the environment whose served inputs are compared")
    dr.add_argument("--model", metavar="MODEL", help="only this model (default: every pin of --env)")
    dr.add_argument("--since", metavar="DURATION|ISO", help="only inputs served since then: 30m, 24h, 7d or ISO 8601")
    dr.add_argument("--dataset-sha256", metavar="HEX", help="the refreshed snapshot to propose (default: see docs)")
    dr.add_argument("--no-branch", action="store_true", help="report only; open no branch")
    dr.add_argument(
        "--repo", default=".", metavar="PATH", help="a clone of the release repo (its origin gets the branch)"
    )
    dr.add_argument("--home", metavar="DIR", help=HOME_HELP + ": the serving sample and the data catalog")
    dr.add_argument("--status-branch", metavar="NAME", help="read the status trail from this branch")
    fmt(dr, ("table", "json"))

    ck = add(
        "check",
        cmd_check,
        "PR tier: each pin the change touches, its workflow on a small sample with cheap settings "
        "(validate-data, train, evaluate; never deploys, never writes the repo or the trail)",
        "releasectl check --smoke                          # against the merge-base with origin/main (or main)",
        "releasectl check --smoke --base origin/main --format json",
    )
    ck.add_argument("--smoke", action="store_true", help="the smoke tier (the only one `check` runs)")
    ck.add_argument("--repo", default=".", metavar="PATH", help="a local clone of the release repo")
    ck.add_argument("--rev", default="HEAD", metavar="REV", help="the commit to check (default: HEAD)")
    ck.add_argument(
        "--base",
        metavar="REV",
        help="the branch the change goes into; pins that differ from its merge-base with --rev are checked "
        "(default: origin/main, else main)",
    )
    ck.add_argument("--fraction", type=float, default=0.05, help="share of each class's rows to sample")
    ck.add_argument("--timeout", type=float, default=300.0, metavar="S", help="seconds for all the runs together")
    ck.add_argument("--fail-at-risk", action="store_true", help="exit 1 when a gate fails or is near its bound")
    fmt(ck, ("table", "json"))

    rp = add(
        "reproduce",
        cmd_reproduce,
        "retrain the live version from its pin and inputs; exit 1 naming each input that differs",
        "releasectl reproduce tumor-classifier --env production",
        "releasectl reproduce tumor-classifier --env production --format json",
    )
    rp.add_argument("model", help="the model (the pin's file stem)")
    rp.add_argument("--env", required=True, metavar="ENV", help="the environment whose live version to retrain")
    rp.add_argument("--repo", default=".", metavar="PATH", help="a local clone of the release repo")
    rp.add_argument("--home", metavar="DIR", help=HOME_HELP + "; its store and data catalog are read, never written")
    rp.add_argument("--store", metavar="URI", help="the artifact store (default: the home's); file:// or s3://")
    rp.add_argument("--status-branch", metavar="NAME", help="read the status trail from this branch")
    fmt(rp, ("table", "json"))

    co = add(
        "completion",
        cmd_completion,
        "print a shell completion script",
        "releasectl completion bash > ~/.local/share/bash-completion/completions/releasectl",
        "releasectl completion zsh > ~/.zfunc/_releasectl   # with fpath+=(~/.zfunc) before compinit",
    )
    co.add_argument("shell", choices=["bash", "zsh"], help="the shell to complete for")
    return p


def _subparser(p: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    try:
        args, extra = p.parse_known_args(argv)
        if extra:  # a subcommand's mistake gets that subcommand's usage, not the top-level one
            _subparser(p, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse: --help is 0, a usage error is 2
        return int(exc.code or 0)
    try:
        if args.command not in ("completion", "serve", "datasets"):
            from controller.app.runtime import load_recipes

            load_recipes(say)
        code: int = args.handler(args)
        return code
    except ReleasectlError as exc:
        if args.traceback:
            traceback.print_exc()
        say(_red(f"error: {exc}"))
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as exc:
        if args.traceback:
            traceback.print_exc()
        say(_red(f"error: {type(exc).__name__}: {exc} (run with --traceback for details)"))
        return 3


__all__ = ["UsageError", "main", "parser"]
