"""The local serving target: the request Router and its HTTP server, over the state files.

Place in the flow: the deploy step (workflows/steps/deploy.py) writes
`<serving>/<environment>/<model>.json` (live, candidate with a traffic weight, previous) and sends
its canary traffic through the Router here; `releasectl serve --env ENV` (or
`python -m workflows.serving`) answers the KServe v1 protocol from the same Router, so what the
canary measured is what clients get. The state files are workflows/serving_state.py's (re-exported
here: `serving.read_state`, `write_state`, `locked`). The Router re-reads a state file when it changes and caches
estimators by artifact digest (loaded through workflows/store.py: verified, never pickle).
"""

import argparse
import json
import math
import random
import signal
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from controller.core.models import DNS_LABEL, DNS_LABEL_RE
from workflows import sampling, shadow, store
from workflows.objects import open_location
from workflows.serving_state import locked as locked  # noqa: PLC0414 - a re-export
from workflows.serving_state import read_state as read_state  # noqa: PLC0414 - a re-export
from workflows.serving_state import state_path as state_path  # noqa: PLC0414 - a re-export
from workflows.serving_state import write_state as write_state  # noqa: PLC0414 - a re-export
from workflows.steps.common import check_label

MAX_BODY = 10 * 1024 * 1024


class BadRequest(ValueError):
    """The client's request is wrong (HTTP 400)."""


class NotServed(LookupError):
    """No such model in this environment (HTTP 404)."""


class PredictionError(RuntimeError):
    """The model answered something that is not one of its classes (HTTP 500)."""


# ---------------------------------------------------------------------------------------------
# Routing


@dataclass(frozen=True)
class Slot:
    """Where one request goes: the live version or the candidate."""

    model: str
    role: str  # "live" | "candidate"
    version: str
    artifact: str


def parse_instances(value: Any) -> NDArray[np.float64]:
    """KServe v1 `instances`: a non-empty list of equally long lists of finite numbers."""
    if not isinstance(value, list) or not value:
        raise BadRequest('"instances" must be a non-empty list of rows (lists of numbers)')
    width = None
    for i, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise BadRequest(f"instances[{i}] must be a non-empty list of numbers")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise BadRequest(f"instances[{i}][{j}] must be a finite number, got {v!r}")
        if width is not None and len(row) != width:
            raise BadRequest(f"instances[{i}] has {len(row)} values, instances[0] has {width}")
        width = len(row)
    return np.asarray(value, dtype=np.float64)


class Router:
    """Picks live or candidate per request by the candidate's weight, and predicts with it."""

    def __init__(
        self, serving_dir: Path | str, store_dir: Path | str, environment: str, seed: int | None = None
    ) -> None:
        self.serving_dir = Path(serving_dir)
        self.store_dir = open_location(store_dir)  # a folder, or s3:// on a cluster
        self.environment = check_label(environment, "environment")
        self._rng = random.Random(seed)  # noqa: S311 - traffic splitting, not cryptography
        self._lock = threading.Lock()
        self._states: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}
        self._estimators: dict[str, Any] = {}
        self.shadow_tallies: dict[tuple[str, str], shadow.Tally] = {}  # (model, shadow artifact)
        self.sampler: sampling.Sampler | None = None  # the endpoint's record of what it served

    def state(self, model: str) -> dict[str, Any] | None:
        """The model's state file, re-read only when it changed (mtime, inode or size)."""
        if not DNS_LABEL_RE.match(model):
            raise BadRequest(f"model name {model!r} is not a DNS label ({DNS_LABEL})")
        path = state_path(self.serving_dir, self.environment, model)
        try:
            st = path.stat()
        except FileNotFoundError:
            with self._lock:
                self._states.pop(model, None)
            return None
        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_size)
        with self._lock:
            cached = self._states.get(model)
            if cached is not None and cached[0] == key:
                return cached[1]
        value = read_state(self.serving_dir, self.environment, model)
        if value is None:
            return None
        with self._lock:
            self._states[model] = (key, value)
        return value

    def forget(self, model: str) -> None:
        """Drop the cached state of a model: the next request re-reads its file."""
        with self._lock:
            self._states.pop(model, None)

    def models(self) -> dict[str, dict[str, Any]]:
        """Every model this environment serves: live version and candidate weight."""
        folder = self.serving_dir / self.environment
        found: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if not DNS_LABEL_RE.match(path.stem):
                continue
            state = self.state(path.stem)
            if state is None:
                continue
            live, candidate = state.get("live"), state.get("candidate")
            found[path.stem] = {
                "version": live["version"] if live else None,
                "artifact": live["artifact"] if live else None,
                "candidate": {"version": candidate["version"], "weight": candidate.get("weight", 0)}
                if candidate
                else None,
            }
        return found

    def pick(self, model: str) -> Slot:
        """Live, or the candidate with probability weight/100 (always, when nothing is live)."""
        state = self.state(model)
        live = state.get("live") if state else None
        candidate = state.get("candidate") if state else None
        if live is None and candidate is None:
            raise NotServed(f"model {model!r} is not served in environment {self.environment}")
        chosen, role = live, "live"
        if candidate is not None:
            weight = float(candidate.get("weight", 0))
            with self._lock:
                draw = self._rng.random() * 100.0
            if live is None or draw < weight:
                chosen, role = candidate, "candidate"
        assert chosen is not None
        return Slot(model=model, role=role, version=str(chosen["version"]), artifact=str(chosen["artifact"]))

    def live_slot(self, model: str) -> Slot:
        """What a client gets by default: the live version (the candidate when nothing is live)."""
        state = self.state(model)
        live = state.get("live") if state else None
        chosen = live or (state.get("candidate") if state else None)
        if not chosen:
            raise NotServed(f"model {model!r} is not served in environment {self.environment}")
        role = "live" if live else "candidate"
        return Slot(model=model, role=role, version=str(chosen["version"]), artifact=str(chosen["artifact"]))

    def estimator(self, artifact: str) -> Any:
        with self._lock:
            cached = self._estimators.get(artifact)
        if cached is not None:
            return cached
        loaded = store.get(self.store_dir, artifact)
        with self._lock:
            self._estimators[artifact] = loaded
        return loaded

    def predict_with(self, slot: Slot, instances: Any) -> list[Any]:
        """Predict with the slot's model; every answer must be one of its classes."""
        X = instances if isinstance(instances, np.ndarray) else parse_instances(instances)
        estimator = self.estimator(slot.artifact)
        expected = int(getattr(estimator, "n_features_in_", X.shape[1]))
        if X.shape[1] != expected:
            raise BadRequest(
                f"model {slot.model} {slot.version} expects {expected} values per instance, got {X.shape[1]}"
            )
        answers = estimator.predict(X)
        classes = {c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])}
        result = [a.item() if hasattr(a, "item") else a for a in answers]
        for answer in result:
            if (isinstance(answer, float) and not math.isfinite(answer)) or (classes and answer not in classes):
                raise PredictionError(f"model {slot.model} {slot.version} answered {answer!r}, not one of its classes")
        return result

    def predict(self, model: str, instances: Any, slot: Slot | None = None) -> tuple[list[Any], Slot]:
        """The picked slot's answers; a shadow, when the state names one, answers a copy (never returned)."""
        slot = slot or self.pick(model)
        X = instances if isinstance(instances, np.ndarray) else parse_instances(instances)
        started = time.perf_counter()
        answers = self.predict_with(slot, X)
        elapsed = time.perf_counter() - started
        state = self.state(model)
        entry = state.get("shadow") if state else None
        if entry and slot.role == "live":
            twin = Slot(model=model, role="shadow", version=str(entry["version"]), artifact=str(entry["artifact"]))
            with self._lock:
                tally = self.shadow_tallies.setdefault((model, twin.artifact), shadow.Tally())
            shadow.mirror(tally, lambda: self.predict_with(twin, X), answers, elapsed)
        if self.sampler is not None:
            self.sampler.add(model, X)
        return answers, slot

    def shadow_figures(self, model: str) -> dict[str, Any] | None:
        """The current shadow's tally (GET /v1/models/<model>/shadow); None when there is none."""
        state = self.state(model)
        entry = state.get("shadow") if state else None
        if not entry:
            return None
        with self._lock:
            tally = self.shadow_tallies.get((model, str(entry["artifact"])))
        figures = tally.figures() if tally else shadow.Tally().figures()
        return {"version": entry["version"], **figures}

    def fixed_version(self) -> str | None:
        """The version every answer of this router comes from, when it serves only one (a predictor pod)."""
        return None


# ---------------------------------------------------------------------------------------------
# HTTP (KServe v1 protocol)


class ServingServer(ThreadingHTTPServer):
    daemon_threads = True
    router: Router
    verbose: bool = False

    def server_close(self) -> None:
        super().server_close()
        sampler = getattr(getattr(self, "router", None), "sampler", None)
        if sampler is not None:
            sampler.flush()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


VERSION_HEADER = "X-Model-Version"


class Handler(BaseHTTPRequestHandler):
    """KServe v1 over HTTP. Every answer that a version gave, errors included, names it in the
    X-Model-Version header, so a client behind a traffic split (the KServe canary) can judge the
    candidate on its own answers only."""

    server: ServingServer
    server_version = "releasectl-serving/1"
    answered_by: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.answered_by:
            self.send_header(VERSION_HEADER, self.answered_by)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, {"error": message, "code": int(status)})

    def _model(self, rest: str) -> str:
        if not DNS_LABEL_RE.match(rest):
            raise BadRequest(f"model name {rest!r} is not a DNS label ({DNS_LABEL})")
        return rest

    def _guard(self, action: Any) -> None:
        self.answered_by = self.server.router.fixed_version()
        try:
            action()
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except NotServed as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except Exception as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        router = self.server.router
        if path == "/healthz":
            self._send(HTTPStatus.OK, {"status": "ok", "environment": router.environment, "models": router.models()})
        elif path == "/v1/models":
            self._send(HTTPStatus.OK, {"models": sorted(router.models())})
        elif path.startswith("/v1/models/") and path.endswith("/shadow"):
            model = self._model(path.removeprefix("/v1/models/").removesuffix("/shadow"))
            figures = router.shadow_figures(model)
            if figures is None:
                raise NotServed(f"model {model!r} has no shadow in environment {router.environment}")
            self._send(HTTPStatus.OK, {"name": model, "shadow": figures})
        elif path.startswith("/v1/models/"):
            model = self._model(path.removeprefix("/v1/models/"))
            slot = router.live_slot(model)
            self.answered_by = slot.version
            router.estimator(slot.artifact)
            self._send(HTTPStatus.OK, {"name": model, "ready": True, "version": slot.version})
        else:
            raise NotServed(f"no such path {path!r}")

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        if not (path.startswith("/v1/models/") and path.endswith(":predict")):
            raise NotServed(f"no such path {path!r}")
        model = self._model(path.removeprefix("/v1/models/").removesuffix(":predict"))
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            raise BadRequest(f"the request needs a JSON body of at most {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict) or "instances" not in body:
            raise BadRequest('the body must be a JSON object {"instances": [[...], ...]}')
        instances = parse_instances(body["instances"])
        slot = self.server.router.pick(model)
        self.answered_by = slot.version
        predictions, _ = self.server.router.predict(model, instances, slot)  # mirrored and sampled there
        self._send(HTTPStatus.OK, {"predictions": predictions, "model_name": model, "model_version": slot.version})


def make_server(
    serving_dir: Path | str,
    store_dir: Path | str,
    environment: str,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int | None = None,
    verbose: bool = False,
    sample: bool = True,
) -> ServingServer:
    """A bound (not yet serving) server; run `serve_forever()` in a thread, `shutdown()` to stop.

    With `sample` (the default) it keeps a bounded sample of the inputs it answers
    (workflows/sampling.py); `server_close()` writes what is pending.
    """
    server = ServingServer((host, port), Handler)
    server.router = Router(serving_dir, store_dir, environment, seed=seed)
    if sample:
        server.router.sampler = sampling.Sampler(serving_dir, environment, seed=seed)
    server.verbose = verbose
    return server


def serve(
    serving_dir: Path | str, store_dir: Path | str, environment: str, host: str = "127.0.0.1", port: int = 8080
) -> None:
    """Serve an environment's models until interrupted."""
    server = make_server(serving_dir, store_dir, environment, host, port, verbose=True)
    print(f"serving environment {environment} at {server.url} (KServe v1: POST /v1/models/<model>:predict)", flush=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: server_close writes the pending input sample

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflows.serving", description=serve.__doc__)
    parser.add_argument("--serving", required=True, help="serving state folder")
    parser.add_argument("--store", required=True, help="artifact store folder")
    parser.add_argument("--env", required=True, help="environment to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    serve(args.serving, args.store, args.env, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
