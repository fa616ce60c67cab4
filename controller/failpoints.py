"""Failpoints: named instants where a test may have the controller kill itself with SIGKILL.

Place in the flow: under everything (like errors.py); the reconciler and the git adapter call
`hit(name)` at the instants crash safety is about. Off unless $RELEASECTL_FAILPOINTS is set, as
`name=probability[,name=probability...]`, e.g. `after-submit=0.3,before-push=0.2,during-push=0.2`:
at each hit the process kills itself with that probability (`during-push` arms a timer of a few
milliseconds instead, so git's push is under way when the controller dies). The chaos test
(tests/test_chaos.py) uses them; an operator can use them to rehearse a crash.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from functools import cache

POINTS = ("after-submit", "before-push", "during-push", "after-push")


@cache
def _config() -> dict[str, float]:
    text = os.environ.get("RELEASECTL_FAILPOINTS", "")
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, chance = item.partition("=")
        if name in POINTS:
            try:
                found[name] = min(1.0, max(0.0, float(chance or "1")))
            except ValueError:
                continue
    return found


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hit(name: str) -> None:
    """Die here with the configured probability (never, when failpoints are off)."""
    chance = _config().get(name)
    if chance and random.random() < chance:  # noqa: S311 - chaos, not cryptography
        if name == "during-push":
            threading.Timer(random.uniform(0.0, 0.03), _die).start()  # noqa: S311
        else:
            _die()
