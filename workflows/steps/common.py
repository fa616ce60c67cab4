"""What every step shares: the "a check said no" exception, its exit-code decorator, URIs, JSON.

Place in the flow: imported by every step in workflows/steps/ and by the modules they use
(workflows/datasets.py, workflows/store.py, workflows/serving.py). A step that says "no" on
purpose raises CheckFailed; the `checked` decorator turns it into the contract's exit code 2 with
a last stderr line `releasectl-check-failed: <reason>` (controller/core/contract.py), and every
step writes its verdict output parameter (Succeeded, Failed with the reason, Errored for a crash),
which the controller reads on any engine. Any other exception is a crash (exit 1, Errored, retried).
"""

import functools
import json
import os
import re
import sys
import tempfile
import typing
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

from controller.core.contract import (
    CHECK_FAILED_EXIT,
    CHECK_FAILED_PREFIX,
    OUT_VERDICT,
    VERDICT_ERRORED,
    VERDICT_FAILED,
    VERDICT_SUCCEEDED,
)
from controller.core.models import DNS_LABEL, DNS_LABEL_RE

SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")

# The local executor's warm worker imports hera.workflows.runner and these step modules once, then
# forks and runs each step with runpy.run_module("hera.workflows.runner"); runpy then warns, on
# every step's stderr, that the module was already imported. It is harmless (runpy runs a fresh
# copy of the module's code as __main__), so say nothing; set in the worker, so inherited by each fork.
warnings.filterwarnings(
    "ignore", message=r"'hera\.workflows\.runner' found in sys\.modules", category=RuntimeWarning, module="runpy"
)

P = ParamSpec("P")
R = TypeVar("R")


class CheckFailed(Exception):
    """A step's check said no on purpose (the user must act): exit code 2, outcome Failed.

    `outputs` are output parameters the step still writes (the deploy step's `report`: the canary
    steps or shadow figures that led to the no), so the trail's evidence has them.
    """

    def __init__(self, message: str, outputs: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.outputs = dict(outputs or {})


def canary_wants_more(sent: int, routed: int, requests: int, weight: int) -> bool:
    """Whether a canary step goes on sending: `requests` at least, and then, since at a low weight
    that many draws may route few to the candidate, on (up to 10x) until the candidate has had
    at least half its expected share. The local canary and the KServe one judge alike."""
    wanted = max(1, round(requests * weight / 200))
    return sent < requests or (routed < wanted and sent < 10 * requests)


def checked(function: Callable[P, R]) -> Callable[P, R]:
    """Run a step; a CheckFailed becomes `releasectl-check-failed: <reason>` on stderr and exit 2.

    functools.wraps keeps the signature visible (inspect.signature follows __wrapped__), so Hera's
    runner still binds and validates the inputs and finds the annotated outputs.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = function(*args, **kwargs)
        except CheckFailed as exc:
            _write_outputs(exc.outputs)
            _write_empty_outputs(function)
            reason = " ".join(str(exc).split()) or type(exc).__name__
            write_verdict(VERDICT_FAILED, reason)
            sys.stdout.flush()
            print(f"{CHECK_FAILED_PREFIX}{reason}", file=sys.stderr, flush=True)
            raise SystemExit(CHECK_FAILED_EXIT) from None
        except Exception as exc:
            write_verdict(VERDICT_ERRORED, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            raise
        write_verdict(VERDICT_SUCCEEDED, "")
        return result

    return wrapper


def write_verdict(verdict: str, reason: str) -> None:
    """The step's verdict as the `verdict` output parameter (controller/core/contract.py).

    Only under the runner (hera__outputs_directory set); the reason is cut to 1,000 characters.
    """
    directory = os.environ.get("hera__outputs_directory")  # noqa: SIM112 - Hera's own spelling
    if not directory:
        return
    path = Path(directory) / "parameters" / OUT_VERDICT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps({"verdict": verdict, "reason": reason[:1000]}))


def _write_outputs(outputs: dict[str, str]) -> None:
    directory = os.environ.get("hera__outputs_directory")  # noqa: SIM112 - Hera's own spelling
    if not directory:
        return
    for name, value in outputs.items():
        path = Path(directory) / "parameters" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)


def _write_empty_outputs(function: Callable[..., Any]) -> None:
    """Like Hera's runner on a crash: empty output files, so Argo does not mask our reason with
    'cannot save parameter'. Only under the runner (hera__outputs_directory set)."""
    directory = os.environ.get("hera__outputs_directory")  # noqa: SIM112 - Hera's own spelling
    if not directory:
        return
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:
        return
    returned = hints.get("return")
    parts = typing.get_args(returned) if typing.get_origin(returned) is tuple else (returned,)
    for part in parts:
        for meta in getattr(part, "__metadata__", ()):
            name = getattr(meta, "name", None)
            if isinstance(name, str) and name:
                path = Path(directory) / "parameters" / name
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("")


def path_from_uri(uri: str, what: str = "location") -> Path:
    """`file:///absolute/path` -> Path. Other schemes are not supported by the local target."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ValueError(f"{what} {uri!r}: only file:///absolute/path URIs are supported here")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{what} {uri!r}: a file URI must not name a host ({parts.netloc!r})")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"{what} {uri!r}: the path must be absolute")
    return Path(path)


def check_label(value: str, what: str) -> str:
    """A DNS label (it becomes part of a path): refused with the rule otherwise."""
    if not isinstance(value, str) or not DNS_LABEL_RE.match(value):
        raise CheckFailed(f"{what} {value!r} is not a DNS label ({DNS_LABEL})")
    return value


def check_sha256(value: str, what: str) -> str:
    """Bare 64 lower-case hex digits; a `sha256:` prefix is accepted and removed."""
    hexdigest = value.removeprefix("sha256:") if isinstance(value, str) else ""
    if not SHA256_HEX_RE.match(hexdigest):
        raise CheckFailed(f"{what} {value!r} is not a sha256 digest (64 lower-case hex digits)")
    return hexdigest


def short(hexdigest: str) -> str:
    """The first 12 hex digits, for messages."""
    hexdigest = hexdigest.removeprefix("sha256:")
    return hexdigest[:12] + "…" if len(hexdigest) > 12 else hexdigest


def json_param(text: str, what: str, default: Any) -> Any:
    """A JSON input parameter; empty means the default; invalid JSON is the user's to fix."""
    if text is None or not str(text).strip():
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CheckFailed(f"{what} is not valid JSON ({exc}): {str(text)[:200]!r}") from None


def json_object_param(text: str, what: str) -> dict[str, Any]:
    value = json_param(text, what, {})
    if not isinstance(value, dict):
        raise CheckFailed(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def dumps(value: Any) -> str:
    """Compact, stable JSON for output parameters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
