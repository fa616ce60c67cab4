"""deploy and undeploy on the local serving target: strategies, health, canary rollback."""

import json
from typing import Any

import pytest
from step_support import SPEC, Place, Trainer

from workflows import datasets, serving
from workflows.steps.common import CheckFailed
from workflows.steps.deploy import deploy, undeploy

BC = "breast-cancer"
CANARY = json.dumps({"steps": [10, 50, 100], "max_error_rate": 0.01, "requests_per_step": 40})


def _deploy(
    place: Place, version: str, artifact: str, strategy: str = "direct", canary: str = CANARY, with_data: bool = True
) -> dict[str, Any]:
    data = (place.data_uri, BC, datasets.builtin_digest(BC)) if with_data else ("", "", "")
    fn = deploy.__wrapped__  # type: ignore[attr-defined]
    echoed, report = fn(
        "dev", "tumor", version, artifact, SPEC, strategy, canary, place.store_uri, place.serving_uri, *data
    )
    assert echoed == artifact
    return dict(json.loads(report))


def _state(place: Place) -> dict[str, Any]:
    state = serving.read_state(place.serving, "dev", "tumor")
    assert state is not None
    return state


def test_direct_then_blue_green(place: Place, trained: Trainer) -> None:
    v1, v2 = trained(), trained(version="1.1.0", C=0.5)
    report = _deploy(place, "1.0.0", v1)
    assert report["strategy"] == "direct" and report["health"] == "ok" and report["previous_version"] is None
    state = _state(place)
    assert state["model"] == "tumor" and state["environment"] == "dev"
    assert state["live"]["version"] == "1.0.0" and state["live"]["artifact"] == v1
    assert state["live"]["spec_digest"] == SPEC and state["candidate"] is None and state["previous"] is None

    report = _deploy(place, "1.1.0", v2, "blue-green")
    assert report["previous_version"] == "1.0.0" and report["health"] == "ok"
    state = _state(place)
    assert (state["live"]["version"], state["previous"]["version"], state["candidate"]) == ("1.1.0", "1.0.0", None)


def test_already_live_only_checks_health(place: Place, trained: Trainer) -> None:
    v1 = trained()
    _deploy(place, "1.0.0", v1)
    before = (place.serving / "dev" / "tumor.json").read_bytes()
    report = _deploy(place, "1.0.0", v1, "canary")
    assert report["already_live"] is True and report["steps"] == [] and report["health"] == "ok"
    assert (place.serving / "dev" / "tumor.json").read_bytes() == before


def test_a_new_version_with_the_live_artifact_is_renamed_not_rolled_out(place: Place, trained: Trainer) -> None:
    """Deterministic training: 1.1.0 trained as 1.0.0 was gives the same bytes; callers see 1.1.0."""
    v1 = trained()
    _deploy(place, "1.0.0", v1)
    report = _deploy(place, "1.1.0", v1, "canary")
    assert report["renamed_from"] == "1.0.0" and report["steps"] == [] and "already_live" not in report
    state = _state(place)
    assert (state["live"]["version"], state["live"]["artifact"]) == ("1.1.0", v1)
    assert (state["previous"]["version"], state["candidate"]) == ("1.0.0", None)
    router = serving.Router(place.serving, place.store, "dev")
    assert router.live_slot("tumor").version == "1.1.0"


def test_canary_promotes_a_good_candidate(place: Place, trained: Trainer) -> None:
    v1, v2 = trained(), trained(version="1.1.0", C=0.5)
    _deploy(place, "1.0.0", v1)
    report = _deploy(place, "1.1.0", v2, "canary")
    assert [s["weight"] for s in report["steps"]] == [10, 50, 100]
    # each step sends its 40 requests, more when the candidate got under half its share of them
    assert all(s["errors"] == 0 and s["requests"] >= 40 for s in report["steps"])
    assert all(s["candidate_requests"] >= round(40 * s["weight"] / 200) for s in report["steps"])
    assert report["steps"][-1]["candidate_requests"] == 40
    assert 0 < report["steps"][0]["candidate_requests"] < 40  # some traffic stayed on 1.0.0
    state = _state(place)
    assert (state["live"]["version"], state["previous"]["version"], state["candidate"]) == ("1.1.0", "1.0.0", None)


def test_failing_canary_rolls_back_to_the_old_live(place: Place, trained: Trainer) -> None:
    v1 = trained()
    wrong = trained("wine", version="2.0.0")  # 13 features: every breast-cancer request errors
    _deploy(place, "1.0.0", v1)
    before = _state(place)
    with pytest.raises(CheckFailed) as info:
        _deploy(place, "2.0.0", wrong, "canary")
    assert str(info.value) == "canary error rate 1.000 > 0.01 at 10% traffic; rolled back to 1.0.0"
    assert _state(place) == before  # the old live keeps serving, no candidate
    router = serving.Router(place.serving, place.store, "dev", seed=1)
    assert {router.pick("tumor").version for _ in range(50)} == {"1.0.0"}


def test_failed_canary_under_the_decorator_exits_2(
    place: Place, trained: Trainer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _deploy(place, "1.0.0", trained())
    outputs = place.store.parent / "outputs"
    monkeypatch.setenv("hera__outputs_directory", str(outputs))
    with pytest.raises(SystemExit) as info:
        deploy(
            "dev",
            "tumor",
            "2.0.0",
            trained("wine", version="2.0.0"),
            SPEC,
            "canary",
            CANARY,
            place.store_uri,
            place.serving_uri,
            place.data_uri,
            BC,
            datasets.builtin_digest(BC),
        )
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "releasectl-check-failed: canary error rate 1.000 > 0.01 at 10% traffic; rolled back to 1.0.0"
    )
    # The report of the no is still an output: the trail's evidence gets the step that failed.
    report = json.loads((outputs / "parameters" / "report").read_text())
    (step,) = report["steps"]
    assert (step["weight"], step["error_rate"], step["errors"]) == (10, 1.0, step["candidate_requests"])
    assert json.loads((outputs / "parameters" / "verdict").read_text())["verdict"] == "Failed"
    assert (outputs / "parameters" / "artifact").read_text() == ""


def test_direct_deploy_of_an_incompatible_artifact_is_undone(place: Place, trained: Trainer) -> None:
    _deploy(place, "1.0.0", trained())
    with pytest.raises(
        CheckFailed,
        match=r"^endpoint check of 2\.0\.0 after the switch failed: .*expects 13 values "
        r"per instance, got 30; rolled back to 1\.0\.0$",
    ):
        _deploy(place, "2.0.0", trained("wine", version="2.0.0"))
    assert _state(place)["live"]["version"] == "1.0.0"
    with pytest.raises(CheckFailed, match=r"^blue-green check of 2\.0\.0 failed: .*rolled back to 1\.0\.0$"):
        _deploy(place, "2.0.0", trained("wine", version="2.0.0"), "blue-green")
    assert _state(place)["live"]["version"] == "1.0.0" and _state(place)["candidate"] is None


def test_first_canary_without_data_uses_zero_rows(place: Place, trained: Trainer) -> None:
    report = _deploy(place, "1.0.0", trained(), "canary", with_data=False)
    assert [s["candidate_requests"] for s in report["steps"]] == [40, 40, 40]  # nothing else was live
    assert _state(place)["live"]["version"] == "1.0.0"


def test_failing_first_canary_removes_the_model(place: Place, trained: Trainer) -> None:
    with pytest.raises(CheckFailed, match=r"at 10% traffic; removed it \(nothing was live before\)$"):
        _deploy(place, "2.0.0", trained("wine", version="2.0.0"), "canary")
    assert serving.read_state(place.serving, "dev", "tumor") is None


def test_health_check_fails_on_a_corrupt_artifact(place: Place, trained: Trainer) -> None:
    from workflows import store

    artifact = trained(version="9.9.9", C=0.25)
    path, _ = store.paths(place.store, artifact)
    good = path.read_bytes()
    try:
        path.write_bytes(good[:-10])
        with pytest.raises(CheckFailed, match=r"^health check of 9\.9\.9 \(sha256:.*\) failed: .*the store is corrupt"):
            _deploy(place, "9.9.9", artifact)
    finally:
        path.write_bytes(good)
    assert serving.read_state(place.serving, "dev", "tumor") is None


def test_bad_inputs_are_refused(place: Place, trained: Trainer) -> None:
    with pytest.raises(CheckFailed, match="unknown deployment strategy 'rainbow'"):
        _deploy(place, "1.0.0", trained(), "rainbow")
    with pytest.raises(CheckFailed, match=r"canary\.steps must be whole percentages that increase and end at 100"):
        _deploy(place, "1.0.0", trained(), "canary", json.dumps({"steps": [50, 10]}))
    with pytest.raises(CheckFailed, match=r"model '\.\./x' is not a DNS label"):
        deploy.__wrapped__(
            "dev",
            "../x",
            "1.0.0",
            trained(),
            SPEC,
            "direct",
            "",
            place.store_uri,  # type: ignore[attr-defined]
            place.serving_uri,
        )


def test_undeploy_is_idempotent(place: Place, trained: Trainer) -> None:
    _deploy(place, "1.0.0", trained())
    first = json.loads(undeploy.__wrapped__("dev", "tumor", place.serving_uri))  # type: ignore[attr-defined]
    assert first == {"removed": True, "previous_version": "1.0.0", "environment": "dev"}
    assert serving.read_state(place.serving, "dev", "tumor") is None
    again = json.loads(undeploy.__wrapped__("dev", "tumor", place.serving_uri))  # type: ignore[attr-defined]
    assert again == {"removed": False, "previous_version": None, "environment": "dev"}
