"""The local serving endpoint (KServe v1) and the Router that the canary shares with it."""

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib import error, request

import numpy as np
import pytest
from step_support import SPEC, Place, Trainer

from workflows import datasets, serving, store
from workflows.steps.deploy import deploy

BC = "breast-cancer"


def _install(place: Place, version: str, artifact: str, candidate: tuple[str, str, int] | None = None) -> None:
    entry = {"version": version, "artifact": artifact, "spec_digest": SPEC, "since": "2026-01-01T00:00:00Z"}
    cand = None
    if candidate:
        cand = {
            "version": candidate[0],
            "artifact": candidate[1],
            "spec_digest": SPEC,
            "since": "x",
            "weight": candidate[2],
        }
    state = {"model": "tumor", "environment": "dev", "live": entry, "candidate": cand, "previous": None}
    serving.write_state(place.serving, "dev", "tumor", state)


@pytest.fixture
def server(place: Place) -> Iterator[serving.ServingServer]:
    srv = serving.make_server(place.serving, place.store, "dev", port=0, seed=3)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _call(srv: serving.ServingServer, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    req = request.Request(srv.url + path, data=body, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    try:
        with request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_predict_answers_like_the_model(place: Place, trained: Trainer, server: serving.ServingServer) -> None:
    artifact = trained()
    deploy.__wrapped__(  # type: ignore[attr-defined]
        "dev",
        "tumor",
        "1.4.0",
        artifact,
        SPEC,
        "direct",
        "",
        place.store_uri,
        place.serving_uri,
        place.data_uri,
        BC,
        datasets.builtin_digest(BC),
    )
    rows = datasets.load(place.data, BC, datasets.builtin_digest(BC)).X[:5]
    status, body = _call(server, "/v1/models/tumor:predict", json.dumps({"instances": rows.tolist()}).encode())
    assert status == 200
    assert body["model_version"] == "1.4.0" and body["model_name"] == "tumor"
    assert body["predictions"] == store.get(place.store, artifact).predict(rows).tolist()
    assert _call(server, "/v1/models/tumor") == (200, {"name": "tumor", "ready": True, "version": "1.4.0"})
    status, health = _call(server, "/healthz")
    assert status == 200 and health["status"] == "ok"
    assert health["models"] == {"tumor": {"version": "1.4.0", "artifact": artifact, "candidate": None}}


def test_errors_are_json(place: Place, trained: Trainer, server: serving.ServingServer) -> None:
    _install(place, "1.0.0", trained())
    status, body = _call(server, "/v1/models/nope:predict", b'{"instances": [[1.0]]}')
    assert (status, body["error"]) == (404, "model 'nope' is not served in environment dev")
    assert _call(server, "/v1/models/nope")[0] == 404
    status, body = _call(server, "/v1/models/tumor:predict", b"{not json")
    assert status == 400 and body["error"].startswith("the body is not valid JSON")
    status, body = _call(server, "/v1/models/tumor:predict", b'{"rows": []}')
    assert (status, body["error"]) == (400, 'the body must be a JSON object {"instances": [[...], ...]}')
    status, body = _call(server, "/v1/models/tumor:predict", b'{"instances": [[1, 2], [1]]}')
    assert (status, body["error"]) == (400, "instances[1] has 1 values, instances[0] has 2")
    status, body = _call(server, "/v1/models/tumor:predict", b'{"instances": [[1, "a"]]}')
    assert (status, body["error"]) == (400, "instances[0][1] must be a finite number, got 'a'")
    status, body = _call(server, "/v1/models/tumor:predict", b'{"instances": [[1.0, 2.0]]}')
    assert (status, body["error"]) == (400, "model tumor 1.0.0 expects 30 values per instance, got 2")
    status, body = _call(server, "/v1/models/..%2Fetc:predict", b'{"instances": [[1.0]]}')
    assert status == 400 and "is not a DNS label" in body["error"]
    assert _call(server, "/nowhere")[0] == 404


def test_router_splits_by_weight_and_follows_the_state_file(place: Place, trained: Trainer) -> None:
    v1, v2 = trained(), trained(version="1.1.0", C=0.5)
    _install(place, "1.0.0", v1, ("1.1.0", v2, 30))
    router = serving.Router(place.serving, place.store, "dev", seed=11)
    picks = [router.pick("tumor").version for _ in range(1000)]
    assert 200 < picks.count("1.1.0") < 400
    again = serving.Router(place.serving, place.store, "dev", seed=11)
    assert [again.pick("tumor").version for _ in range(1000)] == picks  # seeded: deterministic
    _install(place, "1.1.0", v2)
    assert {router.pick("tumor").version for _ in range(20)} == {"1.1.0"}  # re-read after the change
    predictions, slot = router.predict("tumor", np.zeros((2, 30)))
    assert slot.role == "live" and len(predictions) == 2
    assert router.estimator(v2) is router.estimator(v2)  # cached by artifact


def test_router_refuses_bad_names(place: Place) -> None:
    router = serving.Router(place.serving, place.store, "dev")
    with pytest.raises(serving.BadRequest, match="is not a DNS label"):
        router.pick("../../etc/passwd")
    with pytest.raises(serving.NotServed):
        router.pick("absent")


def _version_header(srv: serving.ServingServer, path: str, body: bytes | None = None) -> tuple[int, str | None]:
    req = request.Request(srv.url + path, data=body, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    try:
        with request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get(serving.VERSION_HEADER)
    except error.HTTPError as exc:
        return exc.code, exc.headers.get(serving.VERSION_HEADER)


def test_every_answer_names_the_version_that_gave_it(place: Place, trained: Trainer) -> None:
    """X-Model-Version: on answers and on a version's own errors; not on a request no version saw."""
    from workflows import predictor

    artifact = trained()
    pod = predictor.make_server("tumor", "2.1.0", artifact, place.store_uri, port=0)
    threading.Thread(target=pod.serve_forever, daemon=True).start()
    try:
        row = datasets.load(place.data, BC, datasets.builtin_digest(BC)).X[:1].tolist()
        assert _version_header(pod, "/v1/models/tumor:predict", json.dumps({"instances": row}).encode()) == (
            200,
            "2.1.0",
        )
        assert _version_header(pod, "/v1/models/tumor:predict", b'{"instances": [[1.0, 2.0]]}') == (400, "2.1.0")
        assert _version_header(pod, "/v1/models/tumor") == (200, "2.1.0")
    finally:
        pod.shutdown()
        pod.server_close()
    srv = serving.make_server(place.serving, place.store, "dev", port=0, seed=3)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _install(place, "1.0.0", artifact)
        assert _version_header(srv, "/v1/models/tumor:predict", b'{"instances": [[1.0, 2.0]]}') == (400, "1.0.0")
        assert _version_header(srv, "/v1/models/tumor:predict", b"{not json") == (400, None)
        assert _version_header(srv, "/v1/models/nope:predict", b'{"instances": [[1.0]]}') == (404, None)
    finally:
        srv.shutdown()
        srv.server_close()
