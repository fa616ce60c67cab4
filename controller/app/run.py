"""`releasectl reconcile`: wire the reconciler, the executor, the loop and the HTTP server, then run.

Place in the flow: the CLI's controller command (cli.py keeps parsing and the error funnel).
`--once` reconciles until the pass's runs have finished and are recorded (a CI job or a cron);
`--interval S` (or `--listen`) is the long-running controller: polls, webhooks, executor events,
/healthz, /readyz and /metrics, SIGTERM and SIGINT to stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.app.argo_wiring import add_argo_arguments, argo_compiler, argo_executor
from controller.errors import UsageError
from controller.loop.logs import FORMATS, Logger
from controller.loop.reconciler import PassResult, Reconciler, default_parallel

DEFAULT_INTERVAL_S = 60.0


def add_reconcile_arguments(rec: argparse.ArgumentParser) -> None:
    rec.add_argument("--repo", required=True, help="URL of the release repo (file://, ssh or https)")
    rec.add_argument("--branch", default="main", help="the branch people merge to (default: main)")
    mode = rec.add_mutually_exclusive_group()
    mode.add_argument(
        "--once", action="store_true", help="reconcile until the runs it starts are recorded, then exit (the default)"
    )
    mode.add_argument(
        "--interval",
        type=float,
        metavar="S",
        help=f"run forever, polling every S seconds (--listen: {DEFAULT_INTERVAL_S:g})",
    )
    rec.add_argument("--no-wait", action="store_true", help="with --once: one pass that submits and exits")
    rec.add_argument("--listen", metavar="HOST:PORT", help="serve webhooks, /healthz, /readyz and /metrics")
    rec.add_argument(
        "--webhook-secret-file",
        metavar="PATH",
        help="the webhooks' shared secret (default: $RELEASECTL_WEBHOOK_SECRET; unset: webhooks are refused)",
    )
    rec.add_argument(
        "--max-parallel",
        type=int,
        default=default_parallel(),
        metavar="N",
        help=f"workflow runs in flight at once; the rest queue (default: {default_parallel()})",
    )
    rec.add_argument(
        "--workflow-timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="a run still unfinished after S seconds is stopped and Errored (default: 3600)",
    )
    rec.add_argument(
        "--executor", choices=["local", "argo"], default="local", help="where workflows run (default: local)"
    )
    rec.add_argument("--home", help="state folder (default: $RELEASECTL_HOME or ~/.local/share/releasectl)")
    rec.add_argument("--workdir", help="the controller's clone (default: under --home)")
    rec.add_argument("--identity", help="'Name <email>' of status commits (default: releasectl)")
    rec.add_argument("--format", choices=["text", "json"], default="text", help="--once's report (default: text)")
    rec.add_argument("--log-format", choices=FORMATS, default="text", help="log lines on stderr (default: text)")
    rec.add_argument("-v", "--verbose", action="store_true", help="also log every workflow step")
    add_argo_arguments(rec)


def webhook_secret(path: str | None) -> bytes | None:
    """From --webhook-secret-file, else $RELEASECTL_WEBHOOK_SECRET; surrounding whitespace dropped."""
    if path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise UsageError(f"--webhook-secret-file {path}: {exc.strerror}") from None
        if not secret:
            raise UsageError(f"--webhook-secret-file {path}: the file is empty")
        return secret
    value = os.environ.get("RELEASECTL_WEBHOOK_SECRET", "").strip()
    return value.encode() if value else None


def build(
    args: argparse.Namespace, log: Logger, *, forever: bool = False
) -> tuple[Reconciler, Any, Callable[[], None]]:
    """The reconciler on its clone and executor; and how to let go of them."""
    from controller.adapters.git import CONTROLLER, GitRepo, Identity
    from controller.app import statelock
    from controller.app.runtime import Home, compiler, detached_executor

    if args.max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    home = Home.resolve(args.home)
    identity = Identity.parse(args.identity) if args.identity else CONTROLLER
    from controller.app import cluster_wiring

    cluster = cluster_wiring.workflow_target(args)  # --artifact-store and --target kserve, checked
    if args.executor != "argo" and cluster is not None:
        raise UsageError(
            "--artifact-store and --target kserve compile workflows for a cluster (volumes, images, KServe): "
            "give --executor argo too; the local executor runs the home's own store and serving"
        )
    argo = argo_executor(args, log=log) if args.executor == "argo" else None  # its flags checked before a clone
    workdir = args.workdir or home.workdir(args.repo)
    lock = statelock.acquire(home.root)  # one controller per state folder: exit 3 when another holds it
    try:
        # the long-running controller fetches in its first pass, which retries with backoff
        repo = GitRepo.controller_clone(args.repo, workdir, args.branch, fetch=not forever)
        repo.signing_key = getattr(args, "signing_key", None)  # status commits are ssh-signed with it
        repo.status_branch = getattr(args, "status_branch", None)  # the trail on its own branch
        executor = argo if argo is not None else detached_executor(home, max_parallel=args.max_parallel)
    except BaseException:
        if argo is not None:
            argo.close()
        lock.release()
        raise
    if cluster is not None:
        compile_action = cluster_wiring.compiler(args, home)
    else:
        compile_action = argo_compiler(home, args) if argo is not None else compiler(home)
    reconciler = Reconciler(
        repo,
        executor,
        compile_action,
        identity=identity,
        log=log,
        workflow_timeout_s=args.workflow_timeout,
        max_parallel=args.max_parallel,
    )

    tailer = None
    if getattr(args, "verbose", False):
        if argo is None:
            from controller.app.steptail import tail

            tailer = tail(home, log)
        else:
            log("-v: step lines come from the local engine; with --executor argo follow them with argo get / argo logs")

    def close() -> None:
        try:
            if tailer is not None:
                tailer.stop()
            executor.close()
        finally:
            lock.release()

    return reconciler, executor, close


def run_once(args: argparse.Namespace) -> PassResult:
    log = Logger(args.log_format)
    reconciler, _executor, close = build(args, log)
    try:
        if args.no_wait:
            return reconciler.reconcile(full=True)
        return reconciler.settle(full=True)
    finally:
        close()


def run_forever(args: argparse.Namespace) -> int:
    from controller.loop.metrics import Metrics
    from controller.loop.server import Endpoints, Server, parse_listen
    from controller.loop.service import Controller

    if args.no_wait:
        raise UsageError("--no-wait goes with --once")
    interval = args.interval if args.interval is not None else DEFAULT_INTERVAL_S
    if interval <= 0:
        raise UsageError("--interval must be a positive number of seconds")
    listen = None
    if args.listen:
        try:
            listen = parse_listen(args.listen)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    secret = webhook_secret(args.webhook_secret_file)
    log = Logger(args.log_format)
    reconciler, _executor, close = build(args, log, forever=True)
    metrics = Metrics()
    from controller.app.cluster_wiring import leadership

    ctl = Controller(
        reconciler,
        interval_s=interval,
        metrics=metrics,
        log=log,
        commit_time=reconciler.repo.commit_time,
        leadership=leadership(args, log),
    )
    server = None
    if listen is not None:
        endpoints = Endpoints(
            secret=secret, trigger=ctl.triggers.fire, ready=lambda: ctl.health.ready(interval), metrics=metrics, log=log
        )
        try:
            server = Server(listen[0], listen[1], endpoints).start()
        except OSError as exc:
            close()
            raise UsageError(f"--listen {args.listen}: {exc.strerror or exc}") from None
        log(f"listening on http://{listen[0]}:{server.port} (webhooks {'on' if secret else 'refused: no secret'})")
        print(f"listening on {listen[0]}:{server.port}", file=sys.stderr, flush=True)

    def on_signal(signum: int, _frame: Any) -> None:
        # The handler runs between two bytecodes of the main thread, which may hold the log's or the
        # triggers' lock right then: stop from another thread, never take a lock here.
        why = f"{signal.Signals(signum).name} received"
        threading.Thread(target=ctl.stop, args=(why,), name="stop", daemon=True).start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return ctl.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if server is not None:
            server.close()
        close()
