"""A long-running controller for the chaos test, forked from a warm zygote so that it starts at once.

Place in the flow: tests only. It is the production loop (controller/loop/service.py) over the
production reconciler and the DetachedExecutor (runs live in the local engine process, which the
test never kills), with the real compiled manifests pointed at fast steps (tests/fastexec.py).
Failpoints come from $RELEASECTL_FAILPOINTS (controller/failpoints.py).

    python -m tests.chaos_controller REPO_URL WORKDIR HOME BEHAVIOUR_FILE
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from controller.adapters.git import GitRepo
from controller.adapters.local.detached import DetachedExecutor
from controller.loop.logs import Logger
from controller.loop.reconciler import Reconciler
from controller.loop.service import Controller
from tests.fastexec import fast_compiler

PRELOAD = ("tests.faststeps",)


def executor(home: Path) -> DetachedExecutor:
    return DetachedExecutor(home, max_parallel=2, preload=PRELOAD, idle_exit_s=60)


def main(argv: list[str]) -> int:
    url, workdir, home, behaviour = argv
    log = Logger("text")
    rec = Reconciler(
        GitRepo.controller_clone(url, Path(workdir), fetch=False),
        executor(Path(home)),
        fast_compiler(Path(behaviour)),
        log=log,
        max_parallel=2,
    )
    ctl = Controller(rec, interval_s=0.1, log=log)

    def on_signal(signum: int, _frame: Any) -> None:
        threading.Thread(target=ctl.stop, args=(signal.Signals(signum).name,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    return ctl.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
