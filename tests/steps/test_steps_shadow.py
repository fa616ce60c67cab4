"""`strategy: shadow` locally: the candidate answers a copy of live traffic and never a caller.

A real serving endpoint (workflows/serving.py) answers a test client while the deploy step runs a
shadow rollout; every response must carry the live version. The judgement is a pure table; the
figures are checked against an agreement computed here from the two estimators.
"""

import json
import threading
import time
import urllib.request
from typing import Any

import numpy as np
import pytest
from step_support import SPEC, Place, Trainer

from workflows import datasets, serving, shadow, store
from workflows.steps.common import CheckFailed
from workflows.steps.deploy import deploy

BC = "breast-cancer"


def _deploy(place: Place, version: str, artifact: str, strategy: str = "direct", bounds: str = "") -> dict[str, Any]:
    fn = deploy.__wrapped__  # type: ignore[attr-defined]
    data = (place.data_uri, BC, datasets.builtin_digest(BC))
    _, report = fn(
        "dev", "tumor", version, artifact, SPEC, strategy, "", place.store_uri, place.serving_uri, *data,
        shadow=bounds,
    )  # fmt: skip
    return dict(json.loads(report))


def expected_agreement(place: Place, live: str, candidate: str, requests: int) -> float:
    """What the two estimators agree on over the rows the deploy step sends (held-out, cycled)."""
    _, X_test, _, _ = datasets.split(datasets.load(place.data, BC, datasets.builtin_digest(BC)), 7)
    rows = np.asarray([X_test[i % len(X_test)] for i in range(requests)], dtype=np.float64)
    a = store.get(place.store_uri, live).predict(rows)
    b = store.get(place.store_uri, candidate).predict(rows)
    return round(float(np.mean(a == b)), 6)


def _post(url: str, row: list[float]) -> dict[str, Any]:
    body = json.dumps({"instances": [row]}).encode()
    request = urllib.request.Request(
        f"{url}/v1/models/tumor:predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def test_the_candidate_never_answers_a_caller_and_is_promoted(place: Place, trained: Trainer) -> None:
    v1, v2 = trained(), trained(version="2.0.0", C=0.5)
    _deploy(place, "1.0.0", v1)
    server = serving.make_server(place.serving, place.store_uri, "dev", sample=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = datasets.BUILTINS[BC]().data[:50].tolist()
    answered: list[str] = []
    done = threading.Event()

    def client() -> None:
        i = 0
        while not done.is_set():
            answered.append(_post(server.url, rows[i % len(rows)])["model_version"])
            i += 1
            time.sleep(0.002)  # a steady client, not one that starves the rollout of the GIL

    requests = 300
    clients = threading.Thread(target=client)
    clients.start()
    try:
        report = _deploy(place, "2.0.0", v2, "shadow", json.dumps({"min_requests": requests, "min_agreement": 0.9}))
    finally:
        done.set()
        clients.join()
    during = sum(t.requests for t in server.router.shadow_tallies.values())
    server.shutdown()
    server.server_close()
    assert during > 0, "the client sent nothing while the shadow was installed"
    # Every answer is the live version's: 1.0.0 until the promotion, then 2.0.0 (live by then), never
    # 2.0.0 before it; and every request the endpoint mirrored to the shadow was answered by 1.0.0.
    promoted = answered.index("2.0.0") if "2.0.0" in answered else len(answered)
    assert set(answered[:promoted]) == {"1.0.0"} and set(answered[promoted:]) <= {"2.0.0"}
    assert promoted >= during
    figures = report["shadow"]
    assert figures["requests"] == requests and figures["rows"] == requests and figures["shadow_errors"] == 0
    assert figures["agreement"] == expected_agreement(place, v1, v2, requests)
    assert (figures["min_requests"], figures["min_agreement"]) == (requests, 0.9)
    assert figures["live_p95_ms"] > 0 and figures["shadow_p95_ms"] > 0
    state = serving.read_state(place.serving, "dev", "tumor")
    assert state is not None and "shadow" not in state
    assert (state["live"]["version"], state["previous"]["version"]) == ("2.0.0", "1.0.0")


def test_every_response_during_the_shadow_phase_is_the_live_version(place: Place, trained: Trainer) -> None:
    """The same, held still: the state names a shadow, and a client sends requests to the endpoint."""
    v1, v2 = trained(), trained(version="2.0.0", C=0.5)
    _deploy(place, "1.0.0", v1)
    state = serving.read_state(place.serving, "dev", "tumor")
    assert state is not None
    entry = {"version": "2.0.0", "artifact": v2, "spec_digest": SPEC, "since": "2026-12-01T00:00:00Z"}
    serving.write_state(place.serving, "dev", "tumor", {**state, "shadow": entry})
    server = serving.make_server(place.serving, place.store_uri, "dev", sample=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rows = datasets.BUILTINS[BC]().data[:80].tolist()
        versions = {_post(server.url, row)["model_version"] for row in rows}
        with urllib.request.urlopen(f"{server.url}/v1/models/tumor/shadow", timeout=10) as response:
            figures = json.loads(response.read())["shadow"]
    finally:
        server.shutdown()
        server.server_close()
    assert versions == {"1.0.0"}
    assert figures["version"] == "2.0.0" and figures["requests"] == 80 and figures["shadow_errors"] == 0


def test_a_low_agreement_candidate_ends_failed_with_its_figures(place: Place, trained: Trainer) -> None:
    v1 = trained()
    stump = trained(recipe="random-forest", version="2.0.0", n_estimators=1, max_depth=1)
    _deploy(place, "1.0.0", v1)
    before = serving.read_state(place.serving, "dev", "tumor")
    agreement = expected_agreement(place, v1, stump, 200)
    assert agreement < 0.99  # the precondition of this test: the stump disagrees sometimes
    with pytest.raises(CheckFailed) as info:
        _deploy(place, "2.0.0", stump, "shadow", json.dumps({"min_requests": 200, "min_agreement": 0.99}))
    message = str(info.value)
    assert message.startswith(
        f"shadow 2.0.0 not promoted: agreement {agreement:.4f} < min_agreement 0.99 "
        "over 200 mirrored requests (200 rows)"
    )
    assert "'min_requests': 200, 'min_agreement': 0.99" in message and message.endswith("1.0.0 kept serving")
    assert serving.read_state(place.serving, "dev", "tumor") == before  # the shadow is gone, live unchanged


def test_nothing_live_deploys_directly(place: Place, trained: Trainer) -> None:
    report = _deploy(place, "1.0.0", trained(), "shadow", json.dumps({"min_requests": 10}))
    assert report["shadow_skipped"] == "nothing was live to compare with: deployed directly" and "shadow" not in report


FIG = {"requests": 300, "rows": 300, "agreement": 0.97, "live_p95_ms": 2.0, "shadow_p95_ms": 3.0, "latency_ratio": 1.5}


@pytest.mark.parametrize(
    ("figures", "bounds", "why"),
    [
        pytest.param(FIG, shadow.Bounds(300, 0.95), None, id="meets-agreement"),
        pytest.param(FIG, shadow.Bounds(301, 0.95), "only 300 mirrored requests, fewer than min_requests 301",
                     id="too-few-requests"),
        pytest.param(FIG, shadow.Bounds(300, 0.98),
                     "agreement 0.9700 < min_agreement 0.98 over 300 mirrored requests (300 rows)", id="low-agreement"),
        pytest.param(FIG, shadow.Bounds(300, 0.95, max_latency_ratio=1.5), None, id="ratio-at-bound"),
        pytest.param(FIG, shadow.Bounds(300, 0.95, max_latency_ratio=1.2),
                     "p95 latency ratio 1.500 (3.0 ms vs live 2.0 ms) > max_latency_ratio 1.2 "
                     "over 300 mirrored requests (300 rows)", id="too-slow-relative"),
        pytest.param(FIG, shadow.Bounds(300, 0.95, max_p95_latency_ms=2.5),
                     "p95 latency 3.0 ms > max_p95_latency_ms 2.5 over 300 mirrored requests (300 rows)",
                     id="too-slow-absolute"),
        pytest.param({**FIG, "agreement": None}, shadow.Bounds(300, 0.0),
                     "agreement none < min_agreement 0 over 300 mirrored requests (300 rows)", id="no-rows-compared"),
        pytest.param(FIG, shadow.Bounds(300, 0.98, max_p95_latency_ms=2.5),
                     "agreement 0.9700 < min_agreement 0.98; p95 latency 3.0 ms > max_p95_latency_ms 2.5 "
                     "over 300 mirrored requests (300 rows)", id="both-named"),
    ],
)  # fmt: skip
def test_judge(figures: dict[str, Any], bounds: shadow.Bounds, why: str | None) -> None:
    assert shadow.judge(figures, bounds) == why


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"min_requests": 0}', "shadow.min_requests must be a whole number from 1 to 100000, got 0",
                     id="zero-requests"),
        pytest.param('{"min_agreement": 1.5}', "shadow.min_agreement must be a number between 0 and 1, got 1.5",
                     id="agreement-above-one"),
        pytest.param('{"max_latency_ratio": true}',
                     "shadow.max_latency_ratio must be a number at least 1e-09, got True", id="boolean-ratio"),
        pytest.param('{"min_agrement": 0.9}', "shadow: unknown field(s) min_agrement", id="misspelt"),
        pytest.param("[1]", "shadow must be a JSON object, got list", id="not-an-object"),
    ],
)  # fmt: skip
def test_bad_bounds_are_refused(text: str, message: str) -> None:
    with pytest.raises(CheckFailed) as info:
        shadow.parse_bounds(text)
    assert str(info.value) == message


def test_p95_is_the_nearest_rank() -> None:
    assert shadow.p95([]) is None
    assert shadow.p95([0.001] * 19 + [0.5]) == 1.0  # 20 values: the 19th is the 95th percentile
    assert shadow.p95([i / 1000 for i in range(1, 101)]) == 95.0
