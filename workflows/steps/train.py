"""Step 2 of a deploy workflow: train the pinned recipe on the pinned data, store the artifact.

Place in the flow: the DAG task `train` (controller.core.contract.TRAIN), after validate-data and only
when no artifact with the pin's spec digest exists yet (build once, promote the same artifact).
It fits the recipe (workflows/recipes) on the training split that evaluate will hold out the
other side of, writes it to the content-addressed store (workflows/store.py, skops) and outputs
`artifact` = "sha256:<hex>" of the stored bytes, and a `report` with the digests of the training's
dependencies, code and data (workflows/provenance.py), which the controller puts in the trail.
"""

from typing import Annotated

from hera.workflows import Parameter

from workflows import datasets, provenance, recipes, sample, store
from workflows.steps.common import checked, dumps, json_object_param


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
) -> tuple[Annotated[str, Parameter(name="artifact")], Annotated[str, Parameter(name="report")]]:
    settings = json_object_param(params, "params")
    recipes.build(recipe, settings)  # bad params fail before the data is read
    data = datasets.load_pinned(data_uri, dataset, dataset_sha256, dataset_uri, dataset_format, target_column)
    data = sample.sampled(data)  # all rows, except in a smoke manifest (workflows/sample.py)
    fitted = provenance.fit(recipe, settings, data)
    estimator, elapsed = fitted.estimator, fitted.seconds
    print(
        f"trained {recipe} on {dataset}: {fitted.rows} rows, {len(data.feature_names)} features in {elapsed:.2f}s",
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
            "provenance": fitted.provenance,  # dependency, code and data digests: `releasectl reproduce`
        },
    )
    print(f"stored {model} {version} as {artifact}")
    inputs = fitted.provenance
    digests = {
        "dependencies": inputs["dependencies_digest"],
        "code": inputs["code_digest"],
        "data": inputs["data_digest"],
    }
    return artifact, dumps({"artifact": artifact, "provenance": digests})
