"""Step 2 of a deploy workflow: train the pinned recipe on the pinned data, store the artifact.

Place in the flow: the DAG task `train` (controller.core.contract.TRAIN), after validate-data and only
when no artifact with the pin's spec digest exists yet (build once, promote the same artifact).
It fits the recipe (workflows/recipes) on the training split that evaluate will hold out the
other side of, writes it to the content-addressed store (workflows/store.py, skops) and outputs
`artifact` = "sha256:<hex>" of the stored bytes.
"""

import time
from typing import Annotated

from hera.workflows import Parameter

from workflows import datasets, recipes, sample, store
from workflows.steps.common import CheckFailed, checked, json_object_param


@checked
def train(
    model: str,
    version: str,
    spec_digest: str,
    recipe: str,
    params: str,
    dataset: str,
    dataset_sha256: str,
    data_uri: str,
    store_uri: str,
    dataset_uri: str = "",
    dataset_format: str = "",
    target_column: str = "",
) -> Annotated[str, Parameter(name="artifact")]:
    settings = json_object_param(params, "params")
    estimator = recipes.build(recipe, settings)
    data = datasets.load_pinned(data_uri, dataset, dataset_sha256, dataset_uri, dataset_format, target_column)
    data = sample.sampled(data)  # all rows, except in a smoke manifest (workflows/sample.py)
    X_train, _, y_train, _ = datasets.split(data, int(settings["seed"]))
    started = time.perf_counter()
    try:
        estimator.fit(X_train, y_train)
    except ValueError as exc:  # scikit-learn checks parameter values at fit: a value the pin gave is the user's
        if type(exc).__name__ != "InvalidParameterError":
            raise
        raise CheckFailed(f"recipe {recipe}: {' '.join(str(exc).split())}") from None
    elapsed = time.perf_counter() - started
    print(
        f"trained {recipe} on {dataset}: {X_train.shape[0]} rows, {X_train.shape[1]} features in {elapsed:.2f}s",
        flush=True,
    )
    artifact = store.put(
        store_uri,
        estimator,
        {
            "model": model,
            "version": version,
            "spec_digest": spec_digest,
            "recipe": recipe,
            "params": settings,
            "seed": int(settings["seed"]),
            "dataset": {"name": dataset, "sha256": data.sha256, **({"uri": dataset_uri} if dataset_uri else {})},
            "feature_names": list(data.feature_names),
            "train_seconds": round(elapsed, 4),
        },
    )
    print(f"stored {model} {version} as {artifact}")
    return artifact
