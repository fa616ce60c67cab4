"""Shadow releases: the candidate answers a copy of live traffic; only live answers reach callers.

Place in the flow: the serving Router (workflows/serving.py) calls `mirror` after it answered a
request with the live version while the state file names a `shadow`; the KServe predictor
(workflows/predictor.py) hands a copy of each request to an `HttpMirror`, which posts it to the
shadow InferenceService in the background. Both record into a `Tally` (agreement, latencies);
the deploy step (workflows/steps/deploy_shadow.py locally, workflows/targets/shadow.py on KServe)
reads its `figures()` and `judge`s them against the pin's `deployment.shadow` bounds. The
shadow's answers are compared and dropped here: nothing in this module returns them to a caller.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows.steps.common import CheckFailed, json_object_param

LATENCIES_KEPT = 10_000  # per tally: p95 over the most recent requests, never unbounded


@dataclass(frozen=True)
class Bounds:
    """The pin's `deployment.shadow`: what the candidate must meet to be promoted."""

    min_requests: int = 200
    min_agreement: float = 0.95
    max_latency_ratio: float | None = None
    max_p95_latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"min_requests": self.min_requests, "min_agreement": self.min_agreement}
        if self.max_latency_ratio is not None:
            out["max_latency_ratio"] = self.max_latency_ratio
        if self.max_p95_latency_ms is not None:
            out["max_p95_latency_ms"] = self.max_p95_latency_ms
        return out


def _number(value: Any, what: str, low: float, high: float | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < low
        or (high is not None and value > high)
    ):
        rule = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise CheckFailed(f"shadow.{what} must be a number {rule}, got {value!r}")
    return float(value)


def parse_bounds(text: str) -> Bounds:
    """The `shadow` step parameter (the pin's `deployment.shadow` as JSON); CheckFailed when wrong."""
    given = json_object_param(text, "shadow")
    unknown = sorted(set(given) - {"min_requests", "min_agreement", "max_latency_ratio", "max_p95_latency_ms"})
    if unknown:
        raise CheckFailed(f"shadow: unknown field(s) {', '.join(unknown)}")
    requests = given.get("min_requests", 200)
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= 100_000:
        raise CheckFailed(f"shadow.min_requests must be a whole number from 1 to 100000, got {requests!r}")
    ratio, p95 = given.get("max_latency_ratio"), given.get("max_p95_latency_ms")
    return Bounds(
        min_requests=requests,
        min_agreement=_number(given.get("min_agreement", 0.95), "min_agreement", 0.0, 1.0),
        max_latency_ratio=None if ratio is None else _number(ratio, "max_latency_ratio", 1e-9),
        max_p95_latency_ms=None if p95 is None else _number(p95, "max_p95_latency_ms", 1e-9),
    )


def p95(values: list[float]) -> float | None:
    """The 95th percentile (nearest rank) in milliseconds of seconds given; None for no values."""
    if not values:
        return None
    ranked = sorted(values)
    index = max(0, min(len(ranked) - 1, -(-95 * len(ranked) // 100) - 1))
    return round(ranked[index] * 1000.0, 3)


class Tally:
    """Mirrored requests of one shadow: how many, how often it agreed, how fast each side was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = self.rows = self.agreed_rows = self.shadow_errors = self.dropped = self.in_flight = 0
        self.live_s: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self.shadow_s: deque[float] = deque(maxlen=LATENCIES_KEPT)

    def record(self, live: list[Any], answers: list[Any] | None, live_s: float | None, shadow_s: float | None) -> None:
        """One mirrored request: `answers` is None when the shadow failed to answer (a disagreement)."""
        with self._lock:
            self.requests += 1
            self.rows += len(live)
            if answers is None or len(answers) != len(live):
                self.shadow_errors += 1
            else:
                self.agreed_rows += sum(1 for a, b in zip(live, answers, strict=True) if a == b)
            if live_s is not None:
                self.live_s.append(live_s)
            if shadow_s is not None:
                self.shadow_s.append(shadow_s)

    def add_live_latency(self, live_s: float) -> None:
        with self._lock:
            self.live_s.append(live_s)

    def figures(self) -> dict[str, Any]:
        with self._lock:
            live, shadow = p95(list(self.live_s)), p95(list(self.shadow_s))
            return {
                "requests": self.requests,
                "rows": self.rows,
                "agreed_rows": self.agreed_rows,
                "agreement": round(self.agreed_rows / self.rows, 6) if self.rows else None,
                "shadow_errors": self.shadow_errors,
                "dropped": self.dropped,
                "in_flight": self.in_flight,
                "live_p95_ms": live,
                "shadow_p95_ms": shadow,
                "latency_ratio": round(shadow / live, 4) if shadow is not None and live else None,
            }


def judge(figures: dict[str, Any], bounds: Bounds) -> str | None:
    """None when the shadow may be promoted; else why not, with the figures and the bounds. Pure."""
    requests, agreement = int(figures.get("requests") or 0), figures.get("agreement")
    if requests < bounds.min_requests:
        return f"only {requests} mirrored requests, fewer than min_requests {bounds.min_requests}"
    problems = []
    if agreement is None or agreement < bounds.min_agreement:
        shown = "none" if agreement is None else f"{agreement:.4f}"
        problems.append(f"agreement {shown} < min_agreement {bounds.min_agreement:g}")
    ratio, p95_ms = figures.get("latency_ratio"), figures.get("shadow_p95_ms")
    if bounds.max_latency_ratio is not None and (ratio is None or ratio > bounds.max_latency_ratio):
        shown = "unknown" if ratio is None else f"{ratio:.3f}"
        live = figures.get("live_p95_ms")
        problems.append(
            f"p95 latency ratio {shown} ({p95_ms} ms vs live {live} ms) "
            f"> max_latency_ratio {bounds.max_latency_ratio:g}"
        )
    if bounds.max_p95_latency_ms is not None and (p95_ms is None or p95_ms > bounds.max_p95_latency_ms):
        problems.append(f"p95 latency {p95_ms} ms > max_p95_latency_ms {bounds.max_p95_latency_ms:g}")
    if not problems:
        return None
    return "; ".join(problems) + f" over {requests} mirrored requests ({figures.get('rows', requests)} rows)"


def mirror(tally: Tally, predict: Callable[[], list[Any]], live: list[Any], live_s: float) -> None:
    """Ask the shadow (in process) for its answers to the same rows and record the comparison."""
    started = time.perf_counter()
    try:
        answers: list[Any] | None = predict()
    except Exception:
        answers = None
    tally.record(live, answers, live_s, time.perf_counter() - started)


def _post(url: str, body: dict[str, Any], timeout: float) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the shadow InferenceService's http(s) URL
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


class HttpMirror:
    """The KServe predictor's copy of live traffic: posted to the shadow's URL in the background.

    At most `max_in_flight` copies are pending; beyond that a copy is dropped (and counted), so a
    slow shadow never slows callers down or grows memory.
    """

    def __init__(self, url: str, model: str, max_in_flight: int = 64, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--shadow-url {url!r} must be an http(s) URL")
        self.url = f"{url.rstrip('/')}/v1/models/{model}:predict"
        self.tally = Tally()
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def send_copy(self, rows: list[list[float]], live: list[Any], live_s: float) -> None:
        if not self._slots.acquire(blocking=False):
            with self.tally._lock:
                self.tally.dropped += 1
            return
        with self.tally._lock:
            self.tally.in_flight += 1
        threading.Thread(target=self._send, args=(rows, live, live_s), daemon=True).start()

    def _send(self, rows: list[list[float]], live: list[Any], live_s: float) -> None:
        started = time.perf_counter()
        answers: list[Any] | None = None
        try:
            body = _post(self.url, {"instances": rows}, self.timeout_s)
            got = body.get("predictions") if isinstance(body, dict) else None
            answers = got if isinstance(got, list) else None
        except (urllib.error.URLError, OSError, ValueError):
            answers = None
        finally:
            self.tally.record(live, answers, live_s, time.perf_counter() - started)
            with self.tally._lock:
                self.tally.in_flight -= 1
            self._slots.release()
