"""The contract between workflow builders, step functions and the controller. Constants only.

Place in the flow: workflows/builders.py names its DAG tasks with these, the step functions in
workflows/steps/ write these output parameters and exit with CHECK_FAILED_EXIT when a check says
no, and controller/core/outcomes.py folds a finished run back into an Outcome by the same names. It
imports nothing, so a step pod pays nothing for it.
"""

# DAG task names
VALIDATE_DATA = "validate-data"
TRAIN = "train"
EVALUATE = "evaluate"
GATES_FAILED = "gates-failed"
DEPLOY = "deploy"
UNDEPLOY = "undeploy"
TASK_ORDER = (VALIDATE_DATA, TRAIN, EVALUATE, GATES_FAILED, DEPLOY, UNDEPLOY)

# Output parameters
OUT_ARTIFACT = "artifact"  # train, evaluate, deploy: "sha256:<hex>" of the artifact
OUT_METRICS = "metrics"  # evaluate: JSON object, metric name -> float
OUT_GATES = "gates"  # evaluate: JSON list of {metric, op, threshold, value, passed, kind}
OUT_PASSED = "passed"  # evaluate: "true" | "false"
OUT_REPORT = "report"  # validate-data, train, deploy, undeploy: a JSON object shown in the status body

# A step that exits with this code said "no" on purpose (digest mismatch, drift, failed canary); the
# verdict output below says so too, and is what the controller reads:
# the outcome is Failed and the user must act. Any other non-zero exit is Errored (retried).
CHECK_FAILED_EXIT = 2
# ... and its last line on stderr starts with this prefix, followed by the reason.
CHECK_FAILED_PREFIX = "releasectl-check-failed: "

# Every step's verdict, as an output parameter (so the same contract holds on Argo, where only node
# messages and output parameters come back): JSON {"verdict": <one of VERDICTS>, "reason": "..."}.
# Succeeded: the step did its job. Failed: a check said no on purpose (the user must act).
# Errored: infrastructure or a crash (retried with backoff). A missing verdict means the step never
# got to say (killed, could not start, bad inputs): Errored.
OUT_VERDICT = "verdict"
VERDICT_SUCCEEDED, VERDICT_FAILED, VERDICT_ERRORED = "Succeeded", "Failed", "Errored"
VERDICTS = (VERDICT_SUCCEEDED, VERDICT_FAILED, VERDICT_ERRORED)
VERDICT_PATH = "/tmp/hera-outputs/parameters/verdict"  # noqa: S108 - Hera's outputs folder inside a pod
