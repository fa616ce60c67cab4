"""Step functions for the LocalExecutor tests, run by Hera's runner in step processes.

Place in the flow: tests only. The tests compile Hera workflows whose script templates point at
these functions (`python -m hera.workflows.runner -e tests.executor.stepfns:<fn>`); the step
processes import this module from the repository root, which the executor puts on PYTHONPATH.
Counters live in files (a tmp dir passed as a parameter) so that the tests can count executions.
"""

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

from hera.workflows import Parameter, RetryStrategy, RunnerScriptConstructor, script

RUNNER = RunnerScriptConstructor()


def _bump(counter: str) -> int:
    """Append one line to the counter file; how many lines it has now."""
    path = Path(counter)
    with path.open("a") as f:
        f.write("x\n")
    return len(path.read_text().splitlines())


@script(constructor=RUNNER)
def add(a: int, b: int = 2) -> Annotated[int, Parameter(name="sum")]:
    return a + b


@script(constructor=RUNNER)
def echo(message: str) -> str:
    return message


@script(constructor=RUNNER)
def shout(message: str) -> Annotated[str, Parameter(name="loud")]:
    return message.upper() + "\n"


@script(constructor=RUNNER)
def check_fail(reason: str) -> None:
    print("checking", flush=True)
    print("some detail on stderr", file=sys.stderr)
    print(f"releasectl-check-failed: {reason}", file=sys.stderr)
    sys.exit(2)


@script(constructor=RUNNER)
def boom() -> None:
    raise RuntimeError("boom")


@script(constructor=RUNNER, retry_strategy=RetryStrategy(limit="2"))
def flaky(counter: str) -> Annotated[str, Parameter(name="attempt")]:
    n = _bump(counter)
    if n == 1:
        raise RuntimeError(f"first attempt fails ({n})")
    return str(n)


@script(constructor=RUNNER)
def count(counter: str) -> Annotated[str, Parameter(name="runs")]:
    return str(_bump(counter))


@script(constructor=RUNNER, active_deadline_seconds="1")
def sleepy(seconds: float) -> None:
    time.sleep(seconds)


@script(constructor=RUNNER)
def whoami() -> str:
    import json

    return json.dumps(
        {
            "ppid": os.getppid(),
            "pgid_is_pid": os.getpgid(0) == os.getpid(),
            "cwd": os.getcwd(),
            "outputs": os.environ.get("hera__outputs_directory", ""),  # noqa: SIM112 - Hera's own name
            "argv0": sys.argv[0],
            "stdin": sys.stdin.read(),
        }
    )


@script(constructor=RUNNER, retry_strategy=RetryStrategy(limit="1", retry_policy="Always"))
def kill_worker_once(counter: str) -> Annotated[str, Parameter(name="attempt")]:
    n = _bump(counter)
    if n == 1:
        os.kill(os.getppid(), signal.SIGKILL)  # the warm worker, when forked from it
        time.sleep(5)
    return str(n)


@script(constructor=RUNNER, retry_strategy=RetryStrategy(limit="2", retry_policy="OnError"))
def boom_on_error() -> None:
    raise RuntimeError("boom")


@script(
    constructor=RUNNER,
    retry_strategy=RetryStrategy(limit="2", retry_policy="Always", expression="asInt(lastRetry.exitCode) != 2"),
)
def check_not_retried(reason: str) -> None:
    print(f"releasectl-check-failed: {reason}", file=sys.stderr)
    sys.exit(2)


@script()  # Hera's default inline constructor: the function body becomes the template's source
def inline_add(a: int, b: int) -> None:
    print(a + b)
