"""A small program that campaigns for a Lease and says when it acts: `python -m tests.lease_child`.

Each line it appends to --log is `<identity> <time.monotonic()>` written while `is_leader()` is
True (CLOCK_MONOTONIC is one clock for every process on the machine, so two children's lines
compare). SIGTERM releases the lease; SIGKILL, of course, does not.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from controller.adapters.kube.lease import LeaseElector, LeaseSettings, coordination_api


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--identity", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--renew", type=float, default=2)
    parser.add_argument("--retry", type=float, default=0.5)
    args = parser.parse_args()
    settings = LeaseSettings(
        name="releasectl-leader",
        namespace="releasectl",
        identity=args.identity,
        lease_duration_s=args.duration,
        renew_deadline_s=args.renew,
        retry_period_s=args.retry,
    )
    elector = LeaseElector(coordination_api(), settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    elector.start()
    print("started", flush=True)
    with Path(args.log).open("a") as log:
        while not stopping:
            if elector.is_leader():
                log.write(f"{args.identity} {time.monotonic():.6f}\n")
                log.flush()
            time.sleep(0.02)
    elector.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
