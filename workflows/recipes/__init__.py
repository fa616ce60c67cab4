"""Training recipes: a pin's `training.recipe` and `training.params` -> an unfitted estimator.

Place in the flow: the train step (workflows/steps/train.py) builds the estimator here and fits
it on the training split. The names and the parameters each recipe accepts are
controller.core.models.RECIPES, the table pins are validated against, so a pin that validates builds.
`seed` becomes the estimator's random_state.
"""

from typing import Any

from controller.core.models import RECIPES
from workflows.steps.common import CheckFailed


def _coerce(recipe: str, key: str, value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise CheckFailed(f"recipe {recipe}: params.{key} must be {kind.__name__}, got a boolean")
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(value, int | float):
        return float(value)
    raise CheckFailed(f"recipe {recipe}: params.{key} must be {kind.__name__}, got {value!r}")


def check_params(recipe: str, params: dict[str, Any]) -> dict[str, int | float]:
    """The params a recipe accepts, with their types; anything else is the pin author's to fix."""
    if recipe not in RECIPES:
        raise CheckFailed(f"unknown recipe {recipe!r} (known: {', '.join(sorted(RECIPES))})")
    allowed = RECIPES[recipe]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise CheckFailed(
            f"recipe {recipe}: unknown params {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    if "seed" not in params:
        raise CheckFailed(f"recipe {recipe}: params.seed is required")
    return {key: _coerce(recipe, key, value, allowed[key]) for key, value in params.items()}


def build(recipe: str, params: dict[str, Any]) -> Any:
    """An unfitted scikit-learn estimator for the recipe; raises CheckFailed on bad params."""
    checked = check_params(recipe, params)
    seed = int(checked.pop("seed"))
    try:
        if recipe == "gradient-boosting":
            from sklearn.ensemble import GradientBoostingClassifier

            return GradientBoostingClassifier(random_state=seed, **checked)
        if recipe == "random-forest":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(random_state=seed, n_jobs=1, **checked)
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(random_state=seed, **checked))])
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"recipe {recipe}: {exc}") from None
