"""Property tests (hypothesis): random pin documents, random YAML and random bytes never crash the pin
reader, `validate` or the planner; the answer is always a valid pin or problems that name the file,
in bounded, printable lines."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adapters.git import GitRepo
from controller.app import queries
from controller.core.models import DNS_LABEL_RE, DesiredRef, ModelPin, ModelStatus, Phase, PromotionPolicy
from controller.core.pins import DesiredPin, PinReader, parse_pin, parse_policy
from controller.core.planner import Evidence, plan
from controller.core.schemas import MAX_FIELD, MAX_MESSAGE, Problem
from tests.support import ROOT, make_release_repo

PATH = "environments/dev/tumor-classifier.yaml"
BASE: dict[str, Any] = yaml.safe_load((ROOT / PATH).read_text())
ORDER = ("dev", "staging", "production")
POLICY = PromotionPolicy.model_validate(
    {"apiVersion": "releasectl/v1", "kind": "PromotionPolicy", "order": list(ORDER), "environments": {}}
)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1.0.0", "gradient-boosting", ">= 0.9", "sha256:" + "a" * 64, "a" * 64, "ml@example.com"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
FIELDS = [
    ("model",),
    ("version",),
    ("owner",),
    ("kind",),
    ("apiVersion",),
    ("training",),
    ("training", "recipe"),
    ("training", "dataset"),
    ("training", "dataset", "name"),
    ("training", "dataset", "sha256"),
    ("training", "params"),
    ("training", "params", "seed"),
    ("training", "params", "n_estimators"),
    ("evaluation",),
    ("evaluation", "gates"),
    ("evaluation", "gates", "roc_auc"),
    ("evaluation", "max_regression"),
    ("deployment",),
    ("deployment", "strategy"),
    ("deployment", "canary"),
    ("extra",),
]


@st.composite
def near_pins(draw: st.DrawFn) -> dict[str, Any]:
    """The example pin with a few fields replaced by random values (or removed)."""
    doc = json.loads(json.dumps(BASE))
    for path in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        node = doc
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if draw(st.booleans()) and path[-1] in node:
            del node[path[-1]]
        else:
            node[path[-1]] = draw(documents)
    return doc


def dump(doc: Any, how: str) -> bytes:
    if how == "json":
        return json.dumps(doc, allow_nan=True).encode()
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def check_result(result: ModelPin | list[Problem], path: str) -> None:
    if isinstance(result, ModelPin):
        assert result.model == "tumor-classifier"
        return
    assert result, "an invalid pin must say why"
    for problem in result:
        assert problem.path == path
        assert len(problem.field) <= MAX_FIELD and len(problem.message) <= MAX_MESSAGE
        assert problem.line().isprintable() and "\n" not in problem.line()
    assert len(result) <= 10


@FAST
@given(near_pins(), st.sampled_from(["yaml", "json"]))
def test_random_pin_documents_give_a_pin_or_problems_naming_the_file(doc: dict[str, Any], how: str) -> None:
    check_result(parse_pin(PATH, dump(doc, how), "tumor-classifier"), PATH)


@FAST
@given(documents)
def test_random_documents_give_problems_naming_the_file(doc: Any) -> None:
    check_result(parse_pin(PATH, dump(doc, "yaml"), "tumor-classifier"), PATH)


YAML_BITS = ["&a ", "*a", "<<: ", "!!python/object ", "!x ", "? ", ": ", "- ", "[", "]", "{", "}", ",", "---\n"]


@FAST
@given(st.lists(st.sampled_from([*YAML_BITS, "\n", "  ", "a", "b", "1", "seed", "'", '"', "#"]), max_size=60))
def test_random_yaml_never_crashes_the_reader(bits: list[str]) -> None:
    check_result(parse_pin(PATH, "".join(bits).encode(), "tumor-classifier"), PATH)
    result = parse_policy("".join(bits).encode())
    assert isinstance(result, PromotionPolicy) or all(p.path == "environments/policy.yaml" for p in result)


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_the_reader(data: bytes) -> None:
    check_result(parse_pin(PATH, data, "tumor-classifier"), PATH)
    check_result(parse_pin(PATH, (ROOT / PATH).read_bytes() + data, "tumor-classifier"), PATH)


path_parts = st.text(alphabet=string.ascii_letters + string.digits + "-_./;$ ~üm\u0430\u2010", min_size=0, max_size=12)


@FAST
@given(st.lists(path_parts, min_size=1, max_size=4), st.sampled_from(["100644", "100755", "120000", "160000"]))
def test_the_pin_reader_classifies_every_path(parts: list[str], mode: str) -> None:
    path = "environments/" + "/".join(parts)
    reader = PinReader(ORDER)
    found = reader.read(path, "b" * 40, (ROOT / PATH).read_bytes(), "1" * 40) if mode.startswith("100") else None
    if found is None and not mode.startswith("100"):
        from controller.core.pins import classify

        where = classify(path, frozenset(ORDER), mode)
        assert where is not None and (isinstance(where, Problem) or where.problem is not None)  # never read
        return
    if isinstance(found, Problem):
        assert found.path == path
    elif isinstance(found, DesiredPin):
        assert DNS_LABEL_RE.match(found.environment) and DNS_LABEL_RE.match(found.model)
        assert found.path == path and (found.valid or found.problems)


keys = st.tuples(st.sampled_from([*ORDER, "qa"]), st.sampled_from(["tumor-classifier", "wine", "x"]))
shas = st.sampled_from(["1" * 40, "2" * 40, "3" * 40])


@st.composite
def desired_pins(draw: st.DrawFn) -> dict[tuple[str, str], DesiredPin]:
    out = {}
    for env, model in draw(st.lists(keys, max_size=5, unique=True)):
        doc = draw(near_pins())
        if isinstance(doc.get("model"), str) or draw(st.booleans()):
            doc["model"] = model
        path = f"environments/{env}/{model}.yaml"
        found = PinReader(ORDER).read(path, draw(st.sampled_from(["b1", "b2", "b3"])), dump(doc, "yaml"), draw(shas))
        assert isinstance(found, DesiredPin)
        out[(env, model)] = found
    return out


@st.composite
def statuses(draw: st.DrawFn) -> dict[tuple[str, str], ModelStatus]:
    out = {}
    for env, model in draw(st.lists(keys, max_size=6, unique=True)):
        out[(env, model)] = ModelStatus(
            model=model,
            environment=env,
            phase=draw(st.sampled_from(list(Phase))),
            reason=draw(st.text(max_size=20)),
            desired=DesiredRef(version="1.0.0", spec_digest=None, source_commit=draw(shas)),
            attempts=draw(st.integers(min_value=0, max_value=5)),
        )
    return out


@SLOW
@given(desired_pins(), statuses(), st.booleans())
def test_the_planner_decides_for_any_pins_and_statuses(
    desired: dict[tuple[str, str], DesiredPin], recorded: dict[tuple[str, str], ModelStatus], adopting: bool
) -> None:
    evidence = Evidence(now=datetime(2026, 12, 1, tzinfo=UTC), adopting=adopting, head="4" * 40)
    result = plan(desired, recorded, POLICY, evidence)
    seen = set()
    for action in result.actions:
        assert action.key not in seen  # one action per pin
        seen.add(action.key)
        assert DNS_LABEL_RE.match(action.environment) and DNS_LABEL_RE.match(action.model)
        d = desired.get(action.key)
        if action.kind.value in ("deploy", "rollback"):
            assert d is not None and d.valid and action.environment in ORDER
        if action.environment not in ORDER:  # only a refusal (or the removal of one) outside the policy
            assert action.kind.value in ("reject", "remove")
    for key, d in desired.items():
        if not d.valid and key not in seen:  # an invalid pin is rejected, or already recorded so
            assert recorded[key].phase is Phase.REJECTED


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, str]:
    repo = make_release_repo(tmp_path_factory.mktemp("props"))
    clone = GitRepo.controller_clone(repo.url, repo.root / "ctl")
    return clone, clone.fetch()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.binary(max_size=3000), near_pins().map(lambda d: dump(d, "yaml"))))
def test_validate_over_git_names_the_file_for_any_bytes(bare: tuple[GitRepo, str], data: bytes) -> None:
    repo, head = bare
    path = "environments/staging/tumor-classifier.yaml"
    sha = repo.commit_on("refs/heads/prop", head, {path: data}, "random pin")
    result = queries.validate(repo, sha)
    assert result.pins == 9
    for problem in result.problems:
        assert problem.path in (path, "environments/production/tumor-classifier.yaml")
        assert len(problem.line()) <= 2 * MAX_MESSAGE and problem.line().isprintable()
