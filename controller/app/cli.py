"""`releasectl`: parse, call the library, print, map errors to exit codes. Nothing else.

Place in the flow: the outermost layer. One error funnel: a ReleasectlError becomes one red
line on stderr and its exit code (0 ok, 1 a check said no, 2 usage, 3 a runtime failure);
anything unexpected becomes one line too, with the traceback only under --traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from controller import __version__
from controller.errors import ReleasectlError, UsageError

Handler = Callable[[argparse.Namespace], int]


def _red(text: str) -> str:
    return f"\033[31m{text}\033[0m" if sys.stderr.isatty() and not os.environ.get("NO_COLOR") else text


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _repo(args: argparse.Namespace) -> Any:
    from controller.adapters.git import GitRepo

    return GitRepo(args.repo)


# -- commands -------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.core.render import dumps

    result = queries.validate(_repo(args), args.rev, args.base)
    if args.format == "json":
        print(dumps({"pins": result.pins, "problems": [p.__dict__ for p in result.problems]}))
    else:
        for problem in result.problems:
            print(problem.line())
        say(f"{result.pins} pin(s) in {result.environments} environment(s): {len(result.problems)} problem(s)")
    return 1 if result.problems else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.core.models import ActionKind
    from controller.core.render import action_dict, dumps, plan_text

    snap, plan = queries.plan_at(_repo(args), args.rev, args.base)
    problems = [p.line() for p in snap.problems]
    if args.format == "json":
        print(
            dumps(
                {
                    "head": snap.head,
                    "actions": [action_dict(a) for a in plan.actions],
                    "waiting": [{"environment": e, "model": m, "reason": r} for e, m, r in plan.waiting],
                    "in_sync": len(plan.in_sync),
                    "problems": problems,
                }
            )
        )
    else:
        for line in problems:
            print(line)
        print(plan_text(plan.actions, len(plan.in_sync), plan.waiting))
    said_no = any(a.kind in (ActionKind.BLOCK, ActionKind.REJECT) for a in plan.actions) or plan.waiting
    return 1 if said_no or snap.policy is None or problems else 0


def cmd_status(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.app.inflight import local_runs, overlay
    from controller.app.runtime import Home
    from controller.core.render import dumps, status_table

    rows = overlay(queries.status(_repo(args), args.rev, args.env), local_runs(Home.resolve(args.home).runs))
    print(dumps(rows) if args.format == "json" else status_table(rows))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from controller.app import queries
    from controller.core.render import dumps, history_table

    rows = queries.history(_repo(args), args.model, args.env, args.rev)
    print(dumps([r.as_dict() for r in rows]) if args.format == "json" else history_table(rows))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from controller.app import userops

    made = userops.rollback(_repo(args), args.model, args.env)
    print(f"{made.sha}  {made.summary}")
    say(f"committed on {made.ref}; push it (or open a PR) and the controller rolls back without training")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from controller.app.retry import retry

    made = retry(_repo(args), args.model, args.env)
    print(f"{made.sha}  {made.summary}")
    say(f"committed on {made.ref}; push it (or open a PR) and the controller runs the change again")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from controller.app import userops

    made = userops.promote(_repo(args), args.model, args.source, args.target, args.branch)
    print(f"{made.sha}  {made.summary}")
    say(f"push the branch and open a PR: git push origin {made.ref}")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from controller.app.run import run_forever, run_once

    if args.interval is not None or args.listen:
        return run_forever(args)
    result = run_once(args)
    if args.format == "json":
        from controller.core.render import dumps

        print(
            dumps(
                {
                    "head": result.head,
                    "published": result.published,
                    "push_retries": result.push_retries,
                    "outcomes": [
                        {
                            "environment": o.action.environment,
                            "model": o.action.model,
                            "version": o.action.version,
                            "phase": o.phase.value,
                            "reason": o.reason,
                            "artifact": o.artifact,
                        }
                        for o in result.outcomes
                    ],
                }
            )
        )
    elif not result.outcomes:
        say(f"nothing to do at {result.head[:12]}: every pin is in sync")
    return 1 if result.problems else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.app.runtime import Home
    from workflows.serving import serve

    home = Home.resolve(args.home)
    serve(home.serving, home.store, args.env, args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.app.demo import run_demo

    return run_demo(keep=args.keep, workdir=args.workdir)


# -- parsing --------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="releasectl", description="GitOps promotion controller for ML models.")
    p.add_argument("--version", action="version", version=f"releasectl {__version__}")
    p.add_argument("--traceback", action="store_true", help="show a traceback on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        return cmd

    def repo_opts(cmd: argparse.ArgumentParser, formats: Sequence[str]) -> None:
        cmd.add_argument("--repo", default=".", help="a local clone of the release repo (default: .)")
        cmd.add_argument("--rev", default="HEAD", help="the revision to read (default: HEAD)")
        cmd.add_argument("--format", choices=formats, default=formats[0])

    demo = add("demo", cmd_demo, "the main job on one machine: real training, status commits, a bump, a revert")
    demo.add_argument("--workdir", help="where to build the demo (default: a new temporary folder)")
    demo.add_argument("--keep", action="store_true", help="keep the demo folder")

    rec = add("reconcile", cmd_reconcile, "the controller: fetch, plan, run workflows, record outcomes, push")
    from controller.app.cluster_wiring import add_cluster_arguments
    from controller.app.run import add_reconcile_arguments

    add_reconcile_arguments(rec)
    add_cluster_arguments(rec)

    val = add("validate", cmd_validate, "PR check: schema, names, policy; one file:field: message line each")
    repo_opts(val, ["text", "json"])
    val.add_argument("--base", help="report only files changed since this revision")

    pl = add("plan", cmd_plan, "what reconcile would do, and why")
    repo_opts(pl, ["text", "json"])
    pl.add_argument("--base", help="the last reconciled revision (default: from the status trail)")

    st = add("status", cmd_status, "desired vs live per model and environment")
    repo_opts(st, ["table", "json"])
    st.add_argument("--env", help="one environment")
    st.add_argument(
        "--home", help="the local controller's state, for runs in flight (default: $RELEASECTL_HOME or ~/.local/...)"
    )

    hi = add("history", cmd_history, "every pin change and outcome of a model, from git alone")
    hi.add_argument("model")
    hi.add_argument("--env", help="one environment")
    repo_opts(hi, ["table", "json"])

    rb = add("rollback", cmd_rollback, "a git revert of the last change of a pin (never rewrites history)")
    rb.add_argument("model")
    rb.add_argument("--env", required=True)
    rb.add_argument("--repo", default=".")

    rt = add("retry", cmd_retry, "ask for a Failed outcome to run again: a commit on the current branch")
    rt.add_argument("model", help="the model whose outcome failed")
    rt.add_argument("--env", required=True, help="the environment where it failed")
    rt.add_argument("--repo", default=".", help="a working clone of the release repo (default: .)")

    pr = add("promote", cmd_promote, "a commit on a new branch that copies a pin to the next environment")
    pr.add_argument("model")
    pr.add_argument("--from", dest="source", required=True)
    pr.add_argument("--to", dest="target", required=True)
    pr.add_argument("--branch", help="branch name (default: promote/<model>-<to>-<version>)")
    pr.add_argument("--repo", default=".")

    sv = add("serve", cmd_serve, "serve an environment's live models over HTTP (KServe v1 protocol)")
    sv.add_argument("--env", required=True)
    sv.add_argument("--home")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a usage error is 2
        return int(exc.code or 0)
    try:
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
