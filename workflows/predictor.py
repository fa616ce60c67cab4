"""The KServe predictor container: one model, one artifact, the KServe v1 protocol on port 8080.

Place in the flow: workflows/targets/kserve.py puts `python -m workflows.predictor --model M
--version V --artifact sha256:... --store-uri URI` in every InferenceService it applies. At start
it loads the artifact by digest through workflows/store.py (re-hashed, skops allow-list, never
pickle; from a folder or s3:// with the AWS variables of the Secret) and fails fast when it cannot,
so the pod never turns Ready with a model it cannot run. The HTTP side is workflows/serving.py's
handler (GET /v1/models/<m>, POST /v1/models/<m>:predict, GET /healthz). With `--shadow-url` (a
shadow rollout, workflows/targets/shadow.py) it posts a copy of every request to that predictor in
the background, compares its answers with its own and serves the tally at
GET /v1/models/<m>/shadow; callers only ever get this predictor's answers.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from workflows import serving, shadow, store
from workflows.steps.common import check_label


class OneModel(serving.Router):
    """A Router whose only model is the one this container was started with."""

    def __init__(self, model: str, version: str, artifact: str, store_uri: str, shadow_url: str = "") -> None:
        super().__init__("/nonexistent", store_uri, "predictor")
        self.model = check_label(model, "model")
        self.entry = {"version": version, "artifact": artifact}
        self.mirror = shadow.HttpMirror(shadow_url, model) if shadow_url else None
        self.estimator(artifact)  # load (and verify) now: fail fast, before the pod can be Ready

    def predict(self, model: str, instances: Any, slot: serving.Slot | None = None) -> tuple[list[Any], serving.Slot]:
        if self.mirror is None:
            return super().predict(model, instances, slot)
        slot = slot or self.pick(model)
        X = instances if isinstance(instances, np.ndarray) else serving.parse_instances(instances)
        started = time.perf_counter()
        answers = self.predict_with(slot, X)
        self.mirror.send_copy(X.tolist(), answers, time.perf_counter() - started)  # a copy; its answer is dropped
        return answers, slot

    def shadow_figures(self, model: str) -> dict[str, Any] | None:
        self.state(model)  # only this predictor's model
        return self.mirror.tally.figures() if self.mirror is not None else None

    def state(self, model: str) -> dict[str, Any] | None:
        if model != self.model:
            raise serving.NotServed(f"this predictor serves {self.model!r}, not {model!r}")
        return {"live": self.entry, "candidate": None}

    def models(self) -> dict[str, dict[str, Any]]:
        return {self.model: {**self.entry, "candidate": None}}

    def fixed_version(self) -> str | None:
        return str(self.entry["version"])


def make_server(
    model: str,
    version: str,
    artifact: str,
    store_uri: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    shadow_url: str = "",
) -> serving.ServingServer:
    server = serving.ServingServer((host, port), serving.Handler)
    server.router = OneModel(model, version, artifact, store_uri, shadow_url)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflows.predictor", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--artifact", required=True, help="sha256:<hex> of the skops artifact")
    parser.add_argument("--store-uri", required=True, help="file:///... or s3://bucket/prefix")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a pod's port, behind KServe
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--shadow-url", default="", help="a shadow predictor to mirror every request to")
    args = parser.parse_args(argv)
    store.ARTIFACT_RE.match(args.artifact) or parser.error(f"--artifact {args.artifact!r} is not sha256:<64 hex>")
    server = make_server(args.model, args.version, args.artifact, args.store_uri, args.host, args.port, args.shadow_url)
    print(f"serving {args.model} {args.version} ({args.artifact}) at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
