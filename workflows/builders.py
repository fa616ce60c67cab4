"""Action -> Hera Workflow: one builder per action kind. Builders never submit anything.

Place in the flow: step 4 of a pass. The reconciler hands an Action to `manifest()`, gets the
compiled Argo Workflow (a dict), and gives it to an Executor (the LocalExecutor on one machine,
the Argo Server on a cluster): the same manifest either way. Every step is a plain Python
function in workflows/steps/, run by Hera's runner (`python -m hera.workflows.runner -e
module:function`). The DAG task names and output parameters are the contract in
controller/core/contract.py, which controller/core/outcomes.py folds back into an Outcome.

  deploy, training       validate-data -> train -> evaluate -> deploy | gates-failed
  deploy, existing       validate-data -> evaluate -> deploy | gates-failed
  rollback               deploy (direct; the artifact ran here before: no training, no gates)
  remove                 undeploy
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hera.workflows import DAG, Env, Parameter, RetryStrategy, RunnerScriptConstructor, Script, Task, Workflow
from hera.workflows.models import ValueFrom

from controller.core.contract import (
    DEPLOY,
    EVALUATE,
    GATES_FAILED,
    OUT_ARTIFACT,
    OUT_GATES,
    OUT_PASSED,
    OUT_VERDICT,
    TRAIN,
    UNDEPLOY,
    VALIDATE_DATA,
    VERDICT_PATH,
)
from controller.core.models import Action, ActionKind, ModelPin
from controller.ports import (
    ANNOTATION_ATTEMPT,
    ANNOTATION_SOURCE,
    ANNOTATION_SPEC,
    LABEL_ACTION,
    LABEL_ENVIRONMENT,
    LABEL_MANAGED,
    LABEL_MODEL,
    LABEL_PREFIX,
    LABEL_VERSION,
)
from workflows.steps import deploy as deploy_steps
from workflows.steps import evaluate as evaluate_steps
from workflows.steps import train as train_steps
from workflows.steps import validate_data as validate_steps

LABEL = LABEL_PREFIX
HERA_OUTPUTS = VERDICT_PATH.removesuffix(f"/parameters/{OUT_VERDICT}")  # /tmp/hera-outputs
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # a Kubernetes label value


@dataclass(frozen=True)
class Target:
    """Where steps find data, keep artifacts and serve models; and how pods are shaped."""

    store_uri: str
    data_uri: str
    serving_uri: str
    image: str = "ghcr.io/releasectl/steps:0.1.0"
    namespace: str = "releasectl"
    service_account: str | None = None
    step_deadline_s: int = 1800
    workflow_deadline_s: int = 3600
    retries: int = 2


def manifest(action: Action, target: Target) -> dict[str, Any]:
    """The compiled Argo Workflow for an action."""
    compiled: dict[str, Any] = build(action, target).to_dict()
    return compiled


def build(action: Action, target: Target) -> Workflow:
    builder = BUILDERS.get(action.kind)
    if builder is None:
        raise ValueError(f"{action.kind.value} actions are recorded, not run: no workflow to build")
    return builder(action, target)


def _workflow(action: Action, target: Target) -> Workflow:
    return Workflow(
        name=action.workflow_name,
        namespace=target.namespace,
        entrypoint="main",
        service_account_name=target.service_account,
        active_deadline_seconds=target.workflow_deadline_s,
        labels={
            LABEL_ENVIRONMENT: action.environment,
            LABEL_MODEL: action.model,
            LABEL_VERSION: action.version if LABEL_VALUE_RE.match(action.version) else "unknown",
            LABEL_ACTION: action.kind.value,
            LABEL_MANAGED: "releasectl",
        },
        annotations={
            ANNOTATION_SOURCE: action.source_commit,
            ANNOTATION_SPEC: action.spec_digest or "",
            ANNOTATION_ATTEMPT: str(action.attempts),
        },
    )


def _script(fn: Callable[..., Any], name: str, target: Target, *, retry: bool = True) -> Script:
    return Script(
        name=name,
        source=fn,
        image=target.image,
        # Every step writes its verdict under Hera's outputs folder, even one with no outputs of its own
        # (gates-failed): Hera sets hera__outputs_directory only for functions that return outputs.
        constructor=RunnerScriptConstructor(outputs_directory=HERA_OUTPUTS),
        # Argo's schema types IntOrString fields as strings: write them so, and they validate as published.
        active_deadline_seconds=str(target.step_deadline_s),
        retry_strategy=RetryStrategy(limit=str(target.retries), retry_policy="OnError") if retry else None,
        env=[Env(name="PYTHONUNBUFFERED", value="1")],
        # Every step's verdict (controller/core/contract.py); empty when the step never got to say.
        outputs=[Parameter(name=OUT_VERDICT, value_from=ValueFrom(path=VERDICT_PATH, default=""))],
    )


def _pin(action: Action) -> ModelPin:
    if action.pin is None:
        raise ValueError(f"{action.kind.value} of {action.environment}/{action.model} needs its pin")
    return action.pin


def _data_args(pin: ModelPin, target: Target) -> dict[str, str]:
    return {
        "dataset": pin.training.dataset.name,
        "dataset_sha256": pin.training.dataset.sha256,
        "data_uri": target.data_uri,
    }


def _deploy_args(action: Action, pin: ModelPin, target: Target, artifact: Any, strategy: str) -> dict[str, Any]:
    return {
        "environment": action.environment,
        "model": action.model,
        "version": action.version,
        "artifact": artifact,
        "spec_digest": action.spec_digest or "",
        "strategy": strategy,
        "canary": pin.deployment.canary.model_dump_json(),
        "store_uri": target.store_uri,
        "serving_uri": target.serving_uri,
        **_data_args(pin, target),
    }


def build_deploy(action: Action, target: Target) -> Workflow:
    """Deploy a new or changed pin: train when no artifact exists for its digest, else reuse it."""
    pin = _pin(action)
    live = action.live
    with _workflow(action, target) as w:
        validate_t = _script(validate_steps.validate_data, VALIDATE_DATA, target)
        train_t = _script(train_steps.train, TRAIN, target) if action.trains else None
        evaluate_t = _script(evaluate_steps.evaluate, EVALUATE, target)
        gates_t = _script(evaluate_steps.gates_failed, GATES_FAILED, target, retry=False)
        deploy_t = _script(deploy_steps.deploy, DEPLOY, target)
        with DAG(name="main"):
            validate = Task(
                name=VALIDATE_DATA,
                template=validate_t,
                arguments={
                    **_data_args(pin, target),
                    "reference_sha256": (live.dataset_sha256 or "") if live else "",
                    "max_drift_psi": str(pin.evaluation.max_drift_psi),
                },
            )
            artifact: Any = action.artifact
            first: Task = validate
            if train_t is not None:
                train = Task(
                    name=TRAIN,
                    template=train_t,
                    arguments={
                        "model": action.model,
                        "version": action.version,
                        "spec_digest": action.spec_digest or "",
                        "recipe": pin.training.recipe,
                        "params": json.dumps(pin.training.params, sort_keys=True),
                        **_data_args(pin, target),
                        "store_uri": target.store_uri,
                    },
                )
                validate >> train
                first = train
                artifact = train.get_parameter(OUT_ARTIFACT)
            evaluate = Task(
                name=EVALUATE,
                template=evaluate_t,
                arguments={
                    "artifact": artifact,
                    **_data_args(pin, target),
                    "store_uri": target.store_uri,
                    "params": json.dumps(pin.training.params, sort_keys=True),
                    "gates": json.dumps(pin.evaluation.gates, sort_keys=True),
                    "max_regression": json.dumps(pin.evaluation.max_regression, sort_keys=True),
                    "live_artifact": live.artifact if live else "",
                },
            )
            passed = f"{{{{tasks.{EVALUATE}.outputs.parameters.{OUT_PASSED}}}}}"
            deploy = Task(
                name=DEPLOY,
                template=deploy_t,
                when=f"{passed} == true",
                arguments=_deploy_args(
                    action, pin, target, evaluate.get_parameter(OUT_ARTIFACT), pin.deployment.strategy
                ),
            )
            gates = Task(
                name=GATES_FAILED,
                template=gates_t,
                when=f"{passed} == false",
                arguments={"gates": evaluate.get_parameter(OUT_GATES)},
            )
            first >> evaluate
            evaluate >> [deploy, gates]
    return w


def build_rollback(action: Action, target: Target) -> Workflow:
    """Deploy-only fast path: this environment ran the artifact before; no training, no gates."""
    pin = _pin(action)
    if action.artifact is None:
        raise ValueError(f"rollback of {action.environment}/{action.model} needs the artifact that ran before")
    with _workflow(action, target) as w:
        deploy_t = _script(deploy_steps.deploy, DEPLOY, target)
        with DAG(name="main"):
            Task(name=DEPLOY, template=deploy_t, arguments=_deploy_args(action, pin, target, action.artifact, "direct"))
    return w


def build_remove(action: Action, target: Target) -> Workflow:
    with _workflow(action, target) as w:
        undeploy_t = _script(deploy_steps.undeploy, UNDEPLOY, target)
        with DAG(name="main"):
            Task(
                name=UNDEPLOY,
                template=undeploy_t,
                arguments={
                    "environment": action.environment,
                    "model": action.model,
                    "serving_uri": target.serving_uri,
                },
            )
    return w


BUILDERS: dict[ActionKind, Callable[[Action, Target], Workflow]] = {
    ActionKind.DEPLOY: build_deploy,
    ActionKind.ROLLBACK: build_rollback,
    ActionKind.REMOVE: build_remove,
}
