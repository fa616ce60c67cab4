"""Action -> Hera Workflow: one builder per action kind. Builders never submit anything.

Place in the flow: step 4 of a pass. The reconciler hands an Action to `manifest()`, gets the
compiled Argo Workflow (a dict), and gives it to an Executor (the LocalExecutor on one machine,
the Argo Server on a cluster): the same manifest either way. Every step is a plain Python
function in workflows/steps/, run by Hera's runner (`python -m hera.workflows.runner -e
module:function`). The DAG task names and output parameters are the contract in
controller/core/contract.py, which controller/core/outcomes.py folds back into an Outcome.

  deploy, training       validate-data -> train -> evaluate -> deploy | gates-failed
  smoke (check --smoke)  validate-data -> train -> evaluate, on a sample (smoke_manifest)
  deploy, existing       validate-data -> evaluate -> deploy | gates-failed
  rollback               deploy (direct; the artifact ran here before: no training, no gates)
  remove                 undeploy

Where the steps run (folders or a cluster's store, volume and KServe namespace) is a Target
(workflows/target.py, with `cluster_target` for a cluster).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from hera.workflows import (
    DAG,
    EmptyDirVolume,
    Env,
    ExistingVolume,
    Parameter,
    Resources,
    RetryStrategy,
    RunnerScriptConstructor,
    Script,
    SecretEnv,
    Task,
    Workflow,
)
from hera.workflows.models import Capabilities, SecurityContext, ValueFrom

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
from workflows.sample import SAMPLE_ENV
from workflows.steps import deploy as deploy_steps
from workflows.steps import evaluate as evaluate_steps
from workflows.steps import train as train_steps
from workflows.steps import validate_data as validate_steps
from workflows.target import S3_ENV, Target

LABEL = LABEL_PREFIX
LABEL_TIER = f"{LABEL_PREFIX}/tier"  # "smoke" on the smoke tier's workflows (smoke_manifest); absent otherwise
HERA_OUTPUTS = VERDICT_PATH.removesuffix(f"/parameters/{OUT_VERDICT}")  # /tmp/hera-outputs
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # a Kubernetes label value


def manifest(action: Action, target: Target) -> dict[str, Any]:
    """The compiled Argo Workflow for an action."""
    compiled: dict[str, Any] = build(action, target).to_dict()
    return compiled


def smoke_manifest(action: Action, target: Target, sample: str, reference_sha256: str = "") -> dict[str, Any]:
    """The smoke tier's variant of a deploy action's workflow: it ends after evaluate.

    The same templates as the full workflow, each data step with the variable SAMPLE_ENV set to
    `sample` (workflows/sample.py: JSON fraction, min_per_class, seed); always trains; no deploy
    and no gates-failed task, so it never serves anything and its phase says only whether the
    steps ran. `reference_sha256`: the dataset validate-data checks drift against (the full
    workflow takes the live version's). The label `releasectl.dev/tier: smoke` tells it apart.
    """
    if action.kind is not ActionKind.DEPLOY or not action.trains:
        raise ValueError("a smoke run trains: it needs a deploy action without an artifact")
    compiled: dict[str, Any] = build_deploy(action, target, sample=sample, reference=reference_sha256).to_dict()
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


def _script(fn: Callable[..., Any], name: str, target: Target, *, retry: bool = True, sample: str = "") -> Script:
    env: list[Any] = [Env(name="PYTHONUNBUFFERED", value="1")]
    if sample:  # the smoke tier (smoke_manifest): train and evaluate on this sample of the rows
        env.append(Env(name=SAMPLE_ENV, value=sample))
    if target.s3_secret:
        # The standard AWS variables from the Secret; only the keys are optional beyond the first two.
        env += [
            SecretEnv(name=key, secret_name=target.s3_secret, secret_key=key, optional=key in S3_ENV[2:] or None)
            for key in S3_ENV
        ]
    volumes: list[Any] = []
    if target.volume_claim and target.volume_path:
        volumes.append(ExistingVolume(name="shared", claim_name=target.volume_claim, mount_path=target.volume_path))
    if target.secure_pods:
        volumes.append(EmptyDirVolume(name="tmp", mount_path="/tmp"))  # noqa: S108 - the runner's outputs, in the pod
    resources = None
    if target.cpu_request or target.memory_request or target.memory_limit:
        resources = Resources(
            cpu_request=target.cpu_request, memory_request=target.memory_request, memory_limit=target.memory_limit
        )
    security = (
        SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=Capabilities(drop=["ALL"]),
        )
        if target.secure_pods
        else None
    )
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
        env=env,
        resources=resources,
        volumes=volumes or None,
        security_context=security,
        # Every step's verdict (controller/core/contract.py); empty when the step never got to say.
        outputs=[Parameter(name=OUT_VERDICT, value_from=ValueFrom(path=VERDICT_PATH, default=""))],
    )


def _pin(action: Action) -> ModelPin:
    if action.pin is None:
        raise ValueError(f"{action.kind.value} of {action.environment}/{action.model} needs its pin")
    return action.pin


def _slicing_args(pin: ModelPin) -> dict[str, str]:
    """The slice gates for evaluate (workflows/slices.py); empty when the pin names no slices."""
    ev = pin.evaluation
    if not ev.slices:
        return {"slicing": ""}
    body = {
        "slices": [s.model_dump(exclude_none=True) for s in ev.slices],
        "min_slice": ev.min_slice,
        "max_slice_gap": ev.max_slice_gap,
        "min_slice_rows": ev.min_slice_rows,
    }
    return {"slicing": json.dumps(body, sort_keys=True)}


def _data_args(pin: ModelPin, target: Target) -> dict[str, str]:
    dataset = pin.training.dataset
    return {
        "dataset": dataset.name,
        "dataset_sha256": dataset.sha256,
        "data_uri": target.data_uri,
        "dataset_uri": dataset.uri or "",
        "dataset_format": dataset.format or "",
        "target_column": dataset.target or "",
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
        "shadow": pin.deployment.shadow.model_dump_json(exclude_none=True),
        "store_uri": target.store_uri,
        "serving_uri": target.serving_uri,
        **_data_args(pin, target),
        "serving_options": target.serving_options,
    }


def build_deploy(action: Action, target: Target, *, sample: str = "", reference: str = "") -> Workflow:
    """Deploy a new or changed pin: train when no artifact exists for its digest, else reuse it.

    With `sample` (smoke_manifest): the data steps work on that sample and the DAG ends after evaluate.
    """
    pin = _pin(action)
    live = action.live
    workflow = _workflow(action, target)
    if sample:
        workflow.labels = {**(workflow.labels or {}), LABEL_TIER: "smoke"}
    with workflow as w:
        validate_t = _script(validate_steps.validate_data, VALIDATE_DATA, target, sample=sample)
        train_t = _script(train_steps.train, TRAIN, target, sample=sample) if action.trains else None
        evaluate_t = _script(evaluate_steps.evaluate, EVALUATE, target, sample=sample)
        # The smoke tier ends after evaluate: no deploy, no gates-failed (their templates too).
        tail = None if sample else _tail_templates(target)
        with DAG(name="main"):
            validate = Task(
                name=VALIDATE_DATA,
                template=validate_t,
                arguments={
                    **_data_args(pin, target),
                    "reference_sha256": reference or ((live.dataset_sha256 or "") if live else ""),
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
                    **_slicing_args(pin),
                },
            )
            first >> evaluate
            if tail is not None:
                _deploy_or_gates_failed(action, pin, target, evaluate, *tail)
    return w


def _tail_templates(target: Target) -> tuple[Script, Script]:
    return _script(evaluate_steps.gates_failed, GATES_FAILED, target, retry=False), _script(
        deploy_steps.deploy, DEPLOY, target
    )


def _deploy_or_gates_failed(
    action: Action, pin: ModelPin, target: Target, evaluate: Task, gates_t: Script, deploy_t: Script
) -> None:
    passed = f"{{{{tasks.{EVALUATE}.outputs.parameters.{OUT_PASSED}}}}}"
    deploy = Task(
        name=DEPLOY,
        template=deploy_t,
        when=f"{passed} == true",
        arguments=_deploy_args(action, pin, target, evaluate.get_parameter(OUT_ARTIFACT), pin.deployment.strategy),
    )
    gates = Task(
        name=GATES_FAILED,
        template=gates_t,
        when=f"{passed} == false",
        arguments={"gates": evaluate.get_parameter(OUT_GATES)},
    )
    evaluate >> [deploy, gates]


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
                    "serving_options": target.serving_options,
                },
            )
    return w


BUILDERS: dict[ActionKind, Callable[[Action, Target], Workflow]] = {
    ActionKind.DEPLOY: build_deploy,
    ActionKind.ROLLBACK: build_rollback,
    ActionKind.REMOVE: build_remove,
}
