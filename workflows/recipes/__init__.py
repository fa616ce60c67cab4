"""Training recipes: a pin's `training.recipe` and `training.params` -> an unfitted estimator.

Place in the flow: the train step (workflows/steps/train.py) builds the estimator here and fits
it on the training split. Three recipes are built in; a team adds its own without forking
releasectl by installing a package with an entry point in the `releasectl.recipes` group whose
name is the recipe's name and whose object is a `Recipe` (or a function returning one):

    [project.entry-points."releasectl.recipes"]
    ridge-classifier = "acme_recipes:ridge"

Each recipe declares its parameters with their types; `registry()` registers them in
controller.core.models.RECIPES, the table `validate` checks pins against, so a pin that
validates builds. `seed` is always a parameter and becomes the estimator's random_state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from controller.core.models import DNS_LABEL_RE, RECIPES, register_recipe
from workflows.steps.common import CheckFailed

ENTRY_POINT_GROUP = "releasectl.recipes"
PARAM_TYPES = (int, float, bool, str)


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its parameters (name -> int, float, bool or str) and how to build it.

    `build(params, seed)` gets the pin's params (without `seed`, coerced to the declared types)
    and returns an unfitted scikit-learn-compatible estimator (fit, predict, predict_proba) whose
    types skops can save; imports belong inside `build`, so that listing recipes stays cheap.
    """

    name: str
    params: Mapping[str, type]
    build: Callable[[dict[str, Any], int], Any]
    description: str = ""
    source: str = field(default="built-in", compare=False)
    # The smoke tier's cheap settings: upper bounds on numeric params (e.g. {"n_estimators": 10}),
    # applied by `cheap_params`; empty (the default): the params as the pin gives them.
    cheap: Mapping[str, int | float] = field(default_factory=dict, compare=False)


def _gradient_boosting(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(random_state=seed, **params)


def _random_forest(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, n_jobs=1, **params)


def _logistic_regression(params: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(random_state=seed, **params))])


# The built-in recipes' cheap settings for `releasectl check --smoke`, in one place: upper bounds
# on the params that set how much work a fit does (a param the pin leaves out gets the bound, since
# scikit-learn's default may be larger). Lower values the pin gives are kept, valid or not.
CHEAP: dict[str, dict[str, int | float]] = {
    "gradient-boosting": {"n_estimators": 20},
    "random-forest": {"n_estimators": 10},
    "logistic-regression": {"max_iter": 100},
}

BUILTIN = {
    r.name: r
    for r in (
        Recipe(
            "gradient-boosting",
            RECIPES["gradient-boosting"],
            _gradient_boosting,
            "sklearn GradientBoosting",
            cheap=CHEAP["gradient-boosting"],
        ),
        Recipe(
            "random-forest",
            RECIPES["random-forest"],
            _random_forest,
            "sklearn RandomForest",
            cheap=CHEAP["random-forest"],
        ),
        Recipe(
            "logistic-regression",
            RECIPES["logistic-regression"],
            _logistic_regression,
            "LogisticRegression",
            cheap=CHEAP["logistic-regression"],
        ),
    )
}


def _checked(found: object, name: str, source: str) -> Recipe:
    recipe = found() if callable(found) and not isinstance(found, Recipe) else found
    if not isinstance(recipe, Recipe):
        raise TypeError(f"is {type(recipe).__name__}, not a workflows.recipes.Recipe")
    if recipe.name != name or not DNS_LABEL_RE.match(name):
        raise ValueError(f"the entry point's name must be the recipe's name, a DNS label (got {recipe.name!r})")
    if name in BUILTIN:
        raise ValueError("a built-in recipe has this name")
    bad = sorted(k for k, t in recipe.params.items() if t not in PARAM_TYPES or not k.isidentifier())
    if bad:
        raise TypeError(f"parameter {bad[0]!r} must be an identifier of type int, float, bool or str")
    params = {**recipe.params, "seed": int}
    cheap = dict(recipe.cheap)
    bad = sorted(
        k for k, v in cheap.items() if k not in params or isinstance(v, bool) or not isinstance(v, int | float)
    )
    if bad:
        raise TypeError(f"cheap setting {bad[0]!r} must be a numeric bound on one of the recipe's parameters")
    return Recipe(name, params, recipe.build, recipe.description, source, cheap)


@functools.cache
def _discover() -> tuple[dict[str, Recipe], tuple[str, ...]]:
    found: dict[str, Recipe] = {}
    errors: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"{ep.dist.name if ep.dist else '?'} ({ep.value})"
        try:
            found[ep.name] = _checked(ep.load(), ep.name, source)
        except Exception as exc:
            errors.append(f"recipe entry point {ep.name} = {ep.value}: {type(exc).__name__}: {exc}")
    return found, tuple(errors)


def registry(*, refresh: bool = False) -> dict[str, Recipe]:
    """Built-in and installed recipes; installed ones are registered for pin validation too."""
    if refresh:
        _discover.cache_clear()
    installed, _errors = _discover()
    for recipe in installed.values():
        register_recipe(recipe.name, recipe.params)
    return {**BUILTIN, **installed}


def load_errors() -> tuple[str, ...]:
    """Entry points that could not be loaded (each one line); they are left out of the registry."""
    return _discover()[1]


def describe() -> list[dict[str, Any]]:
    """`releasectl recipes`: every recipe a pin can name, its parameters and where it comes from."""
    return [
        {
            "name": r.name,
            "source": r.source,
            "params": {k: t.__name__ for k, t in sorted(r.params.items())},
            "description": r.description,
        }
        for r in registry().values()
    ]


def _coerce(recipe: str, key: str, value: Any, kind: type) -> int | float | bool | str:
    if kind is bool or isinstance(value, bool):
        if kind is bool and isinstance(value, bool):
            return value
        raise CheckFailed(f"recipe {recipe}: params.{key} must be {kind.__name__}, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
    elif kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(value, int | float):
        return float(value)
    raise CheckFailed(f"recipe {recipe}: params.{key} must be {kind.__name__}, got {value!r}")


def check_params(recipe: str, params: dict[str, Any]) -> dict[str, Any]:
    """The params a recipe accepts, with their types; anything else is the pin author's to fix."""
    known = registry()
    if recipe not in known:
        raise CheckFailed(f"unknown recipe {recipe!r} (known: {', '.join(known)})")
    allowed = known[recipe].params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise CheckFailed(
            f"recipe {recipe}: unknown params {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    if "seed" not in params:
        raise CheckFailed(f"recipe {recipe}: params.seed is required")
    return {key: _coerce(recipe, key, value, allowed[key]) for key, value in params.items()}


def cheap_params(recipe: str, params: dict[str, Any]) -> dict[str, Any]:
    """The smoke tier's params: each bound of the recipe's `cheap` settings applied (see CHEAP).

    A numeric value above its bound is lowered to it, and a bounded param the pin leaves out is set
    to the bound; everything else (seed, a value already below, a wrong type) is left as the pin
    says, so an invalid value still fails as it would in the full workflow. Unknown recipes: as is.
    """
    found = registry().get(recipe)
    out = dict(params)
    for key, bound in (found.cheap if found is not None else {}).items():
        value = out.get(key)
        if value is None or (not isinstance(value, bool) and isinstance(value, int | float) and value > bound):
            out[key] = bound
    return out


def build(recipe: str, params: dict[str, Any]) -> Any:
    """An unfitted estimator for the recipe; raises CheckFailed on bad params."""
    checked = check_params(recipe, params)
    seed = int(checked.pop("seed"))
    try:
        return registry()[recipe].build(checked, seed)
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"recipe {recipe}: {exc}") from None
