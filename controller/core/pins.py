"""Bytes of a release repo's tree -> pins, the policy, and precise rejections.

Place in the flow: the git adapter hands over (path, blob) pairs read from a commit's tree;
this module turns them into DesiredPin values for the planner, each either a valid ModelPin or
the problems that reject it (file, field path, rule). One bad file never hides another. Parsed
results are memoised by (path, blob sha), so a poll re-parses only what changed. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from controller.core.models import DNS_LABEL_RE, RECIPES, ModelPin, PromotionPolicy
from controller.core.paths import ENV_ROOT, PIN_SUFFIX, POLICY_PATH
from controller.core.schemas import Problem, capped, load_yaml, quote, schema_problems
from controller.core.yamlio import TooLarge, YamlRefused

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class DesiredPin:
    """What one pin file asks for at a commit, and the commit that last changed it."""

    environment: str
    model: str
    path: str
    source_commit: str
    pin: ModelPin | None
    problems: tuple[Problem, ...] = ()
    digest: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.environment, self.model)

    @property
    def valid(self) -> bool:
        return self.pin is not None and not self.problems

    @property
    def version(self) -> str:
        return self.pin.version if self.pin is not None else "unknown"


@dataclass(frozen=True)
class PinPath:
    """A path that names a status file (environment and model are DNS labels); `problem`: refused as a
    whole whatever it holds (an environment the policy does not list, a symlink, a submodule)."""

    environment: str
    model: str
    problem: Problem | None = None


SYMLINK, GITLINK = "120000", "160000"  # git tree modes: a symbolic link, a submodule


def classify(path: str, order: Collection[str], mode: str = "") -> PinPath | Problem | None:
    """Where a path under environments/ belongs: a pin, a problem, or nothing we read.

    `order` is the policy's environments; pass a frozenset when classifying many paths. `mode` is
    the tree entry's mode: a symlink or a submodule is refused and never followed, wherever it is.
    """
    if not path.startswith(ENV_ROOT):
        return None
    special = _special(path, mode)
    rest = path[len(ENV_ROOT) :]
    if path == POLICY_PATH or "/" not in rest:
        return special  # policy.yaml is read on its own; README.md and friends are ignored
    env, _, name = rest.partition("/")
    base = name.rsplit("/", 1)[-1]
    if special is None and (base.startswith(".") or not base.endswith((".yaml", ".yml"))):
        return None
    if not DNS_LABEL_RE.match(env):
        return special or Problem(path, "", f"environment folder {quote(env)} is not a DNS label", "environment")
    if "/" in name:
        return special or Problem(path, "", "pins live directly under environments/<env>/", "layout")
    if not name.endswith(PIN_SUFFIX):
        return special or Problem(path, "", "pin files end in .yaml", "extension")
    stem = name[: -len(PIN_SUFFIX)]
    if not DNS_LABEL_RE.match(stem):
        return special or Problem(path, "", f"file stem {quote(stem)} is not a DNS label (a-z, 0-9, '-')", "dns-label")
    if special is not None:
        return PinPath(env, stem, special)
    if env not in order:
        listed = ", ".join(sorted(order)) if len(order) <= 10 else f"{len(order)} environments"
        return PinPath(
            env,
            stem,
            Problem(path, "", f"environment {env!r} is not in policy.yaml order ({listed})", "environment"),
        )
    return PinPath(env, stem)


def _special(path: str, mode: str) -> Problem | None:
    if mode == SYMLINK:
        return Problem(path, "", "is a symbolic link: release files must be regular files (never followed)", "symlink")
    if mode == GITLINK:
        return Problem(path, "", "is a submodule: release files must be regular files (never followed)", "submodule")
    return None


def _document(path: str, data: bytes | TooLarge) -> Any | Problem:
    try:
        return load_yaml(data)
    except YamlRefused as exc:
        return Problem(path, exc.field, exc.message, exc.rule)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return Problem(path, "", f"is not valid YAML{where}: {what}", "yaml")
    except UnicodeDecodeError:
        return Problem(path, "", "is not UTF-8 text", "yaml")


def _validate(kind: str, model: type[M], path: str, doc: Any) -> M | list[Problem]:
    if not isinstance(doc, dict):
        return [Problem(path, "", "must be a mapping", "type")]
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        problems = schema_problems(kind, path, doc)
        # A few rules live in validators only (they have no JSON Schema form); say those as pydantic does.
        return problems or capped(
            [
                Problem(
                    path,
                    ".".join(str(p) for p in err["loc"]),
                    err["msg"].removeprefix("Value error, "),
                    err["type"],
                )
                for err in exc.errors()
            ]
        )


def parse_pin(path: str, data: bytes | TooLarge, model: str) -> ModelPin | list[Problem]:
    """One pin file -> a ModelPin, or every problem with it."""
    result = parse_document(path, data)
    if isinstance(result, list):
        return result
    return pin_rules(path, result, model) or result


def parse_document(path: str, data: bytes | TooLarge) -> ModelPin | list[Problem]:
    """YAML and the schema: what a pin's bytes mean, whatever file holds them."""
    doc = _document(path, data)
    if isinstance(doc, Problem):
        return [doc]
    return _validate("ModelPin", ModelPin, path, doc)


def pin_rules(path: str, pin: ModelPin, model: str) -> list[Problem]:
    """The rules a schema cannot say: the file stem, the recipe's parameters, a seed."""
    problems = []
    if pin.model != model:
        problems.append(
            Problem(path, "model", f"{pin.model!r} must equal the file stem {model!r}", "model-matches-file")
        )
    recipe = pin.training.recipe
    allowed = RECIPES.get(recipe)
    if allowed is None:
        known = ", ".join(RECIPES)
        problems.append(
            Problem(path, "training.recipe", f"{recipe!r} is not a known recipe (known: {known})", "recipe")
        )
    else:
        problems.extend(_param_problems(path, recipe, allowed, pin.training.params))
    if "seed" not in pin.training.params:
        problems.append(Problem(path, "training.params.seed", "is required: training must be repeatable", "seed"))
    return capped(problems)


def _param_problems(path: str, recipe: str, allowed: Mapping[str, type], params: Mapping[str, object]) -> list[Problem]:
    problems = []
    for name, value in params.items():
        if name not in allowed:
            problems.append(
                Problem(
                    path,
                    f"training.params.{name}",
                    f"is not a parameter of recipe {recipe} (allowed: {', '.join(sorted(allowed))})",
                    "recipe-params",
                )
            )
        elif not _fits(value, allowed[name]):
            problems.append(
                Problem(
                    path,
                    f"training.params.{name}",
                    f"{quote(value)} is not of type {allowed[name].__name__}",
                    "recipe-params",
                )
            )
        elif (why := _out_of_range(value)) is not None:
            problems.append(Problem(path, f"training.params.{name}", f"{quote(value)} {why}", "param-range"))
    return problems


PARAM_INT_RANGE = (-(2**31), 2**32 - 1)  # what numpy's seeds and scikit-learn's counts take


def _out_of_range(value: object) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = PARAM_INT_RANGE
        if not low <= value <= high:
            return f"is outside [{low}, {high}]"
    return None


def _fits(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def parse_policy(data: bytes | TooLarge | None, path: str = POLICY_PATH) -> PromotionPolicy | list[Problem]:
    if data is None:
        return [Problem(path, "", "is missing: the release repo needs a promotion policy", "policy")]
    doc = _document(path, data)
    if isinstance(doc, Problem):
        return [doc]
    return _validate("PromotionPolicy", PromotionPolicy, path, doc)


@dataclass
class PinReader:
    """Memoised parse of pin blobs: a poll re-parses only blobs it has not seen.

    A valid document is cached by blob alone (promotions copy pins, so one blob often sits in
    several environments); the per-file rules are cheap and run on every read. An invalid
    document is cached per (path, blob), since its messages name the file.
    """

    order: tuple[str, ...]
    envs: frozenset[str] = field(init=False)
    _valid: dict[str, tuple[ModelPin, str]] = field(default_factory=dict)
    _invalid: dict[tuple[str, str], tuple[Problem, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.envs = frozenset(self.order)

    def read(
        self,
        path: str,
        blob: str,
        data: bytes | TooLarge | None,
        source_commit: str,
        where: PinPath | None = None,
    ) -> DesiredPin | Problem | None:
        if where is None:
            found = classify(path, self.envs)
            if not isinstance(found, PinPath):
                return found
            where = found
        if where.problem is not None:  # refused whatever it holds: its bytes are never parsed
            return DesiredPin(where.environment, where.model, path, source_commit, None, (where.problem,))
        if blob not in self._valid and (path, blob) not in self._invalid:
            if data is None:
                raise KeyError(f"{path}: blob {blob} is not cached and no data was given")
            self.prime(path, blob, data)
        valid = self._valid.get(blob)
        if valid is None:
            return DesiredPin(where.environment, where.model, path, source_commit, None, self._invalid[(path, blob)])
        pin, digest = valid
        problems = pin_rules(path, pin, where.model)
        if problems:
            return DesiredPin(where.environment, where.model, path, source_commit, None, tuple(problems))
        return DesiredPin(where.environment, where.model, path, source_commit, pin, (), digest)

    def prime(self, path: str, blob: str, data: bytes | TooLarge) -> None:
        """Parse a blob now (it may arrive before its turn, from a pipelined read)."""
        self._keep(path, blob, parse_document(path, data))

    def prime_document(self, path: str, blob: str, doc: Any) -> None:
        """A blob whose YAML was already loaded (by a forked child): the schema part only."""
        self._keep(path, blob, _validate("ModelPin", ModelPin, path, doc))

    def _keep(self, path: str, blob: str, result: ModelPin | list[Problem]) -> None:
        if isinstance(result, list):
            self._invalid[(path, blob)] = tuple(result)
        else:
            self._valid[blob] = (result, result.spec_digest())

    def known(self, path: str, blob: str) -> bool:
        return blob in self._valid or (path, blob) in self._invalid

    def size(self) -> int:
        return len(self._valid) + len(self._invalid)

    def keep_only(self, blobs: Collection[str]) -> None:
        """Forget what the current head no longer holds, so memory follows the repo, not its history."""
        self._valid = {b: v for b, v in self._valid.items() if b in blobs}
        self._invalid = {k: v for k, v in self._invalid.items() if k[1] in blobs}


def check_versions(pins: Mapping[str, DesiredPin], order: Iterable[str]) -> dict[str, Problem]:
    """One model's pins across environments: the same version must mean the same training spec.

    The environment earliest in `order` that pins a version defines it (that is where it is
    trained); any later environment pinning that version with another spec is rejected.
    """
    defined: dict[str, DesiredPin] = {}
    problems: dict[str, Problem] = {}
    for env in order:
        desired = pins.get(env)
        if desired is None or not desired.valid or desired.pin is None:
            continue
        first = defined.setdefault(desired.pin.version, desired)
        if first.digest != desired.digest:
            problems[env] = Problem(
                desired.path,
                "training",
                f"version {desired.pin.version} is {_short(first.digest)} in {first.environment} "
                f"but {_short(desired.digest)} here; the same version must have the same training spec "
                "(bump the version)",
                "same-version-same-spec",
            )
    return problems


def _short(digest: str | None) -> str:
    return (digest or "")[:19] + "…"


def with_problem(desired: DesiredPin, problem: Problem) -> DesiredPin:
    return DesiredPin(
        desired.environment,
        desired.model,
        desired.path,
        desired.source_commit,
        desired.pin,
        (*desired.problems, problem),
        desired.digest,
    )
