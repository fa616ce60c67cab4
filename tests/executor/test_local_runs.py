"""LocalExecutor runs real Hera-compiled workflows: parameters, depends, when, failures, retries, deadlines.

Place in the flow: tests of step 4 (the executor). Steps are real processes running Hera's runner
on tests/executor/stepfns.py, mostly forked from one warm worker per module to keep this fast.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from hera.workflows import DAG, Container, Parameter, Workflow

from controller.adapters.local.executor import LocalExecutor
from controller.ports import WorkflowRun
from tests.executor import stepfns as s
from tests.executor.conftest import compiled


def run(ex: LocalExecutor, wf: Workflow) -> WorkflowRun:
    name = ex.submit(compiled(wf))
    return ex.wait(name, timeout_s=60)


def phases(r: WorkflowRun) -> dict[str, str]:
    return {k: n.phase for k, n in r.nodes.items()}


def test_parameters_flow_across_tasks_and_workflow_parameters(warm_executor: LocalExecutor) -> None:
    args = [Parameter(name="start", value="40")]
    with Workflow(name="params-flow", entrypoint="main", arguments=args) as wf, DAG(name="main"):
        a = s.add(name="a", arguments={"a": "{{workflow.parameters.start}}"})
        b = s.add(name="b", arguments={"a": a.get_parameter("sum"), "b": "5"})
        c = s.echo(name="c", arguments={"message": "{{workflow.name}}:" + b.get_parameter("sum").value})
        d = s.shout(name="d", arguments={"message": c.result})
        a >> b >> c >> d
    r = run(warm_executor, wf)
    assert r.phase == "Succeeded", r
    assert r.finished_ok and r.message == ""
    assert r.nodes["a"].outputs == {"sum": "42"}
    assert r.nodes["b"].outputs == {"sum": "47"}
    assert r.nodes["d"].outputs == {"loud": "PARAMS-FLOW:47"}  # one trailing newline dropped, as in Argo
    assert all(n.exit_code == 0 and n.attempts == 1 for n in r.nodes.values())
    assert all(n.started and n.finished and n.started <= n.finished for n in r.nodes.values())


def test_outputs_result_is_stdout_without_one_trailing_newline(warm_executor: LocalExecutor) -> None:
    with Workflow(name="result-flow", entrypoint="main") as wf, DAG(name="main"):
        a = s.echo(name="a", arguments={"message": "hello world"})
        b = s.echo(name="b", arguments={"message": a.result})
        a >> b
    r = run(warm_executor, wf)
    assert r.phase == "Succeeded"
    stepdir = warm_executor.home / "runs" / "result-flow" / "steps" / "b-1"
    assert (stepdir / "stdout").read_text() == "hello world\n"
    assert json.loads((stepdir / "inputs.json").read_text()) == [{"name": "message", "value": "hello world"}]


def test_failed_step_omits_dependents_and_fails_the_workflow(warm_executor: LocalExecutor) -> None:
    with Workflow(name="check-fails", entrypoint="main") as wf, DAG(name="main"):
        check = s.check_fail(name="check", arguments={"reason": "digest mismatch"})
        after = s.echo(name="after", arguments={"message": "never"})
        check >> after
    r = run(warm_executor, wf)
    assert r.phase == "Failed"
    assert r.message == "releasectl-check-failed: digest mismatch"
    node = r.nodes["check"]
    assert (node.phase, node.exit_code, node.message) == ("Failed", 2, "releasectl-check-failed: digest mismatch")
    assert r.nodes["after"].phase == "Omitted"
    assert r.nodes["after"].attempts == 0
    assert not (warm_executor.home / "runs" / "check-fails" / "steps" / "after-1").exists()


def test_exception_message_is_the_last_stderr_line(warm_executor: LocalExecutor) -> None:
    with Workflow(name="raises", entrypoint="main") as wf, DAG(name="main"):
        s.boom(name="boom")
    r = run(warm_executor, wf)
    assert (r.phase, r.nodes["boom"].exit_code, r.message) == ("Failed", 1, "RuntimeError: boom")


def test_depends_failed_succeeded_or_and_not(warm_executor: LocalExecutor) -> None:
    with Workflow(name="depends-logic", entrypoint="main") as wf, DAG(name="main"):
        a = s.check_fail(name="a", arguments={"reason": "no"})
        s.echo(name="on-fail", arguments={"message": "handled"}, depends="a.Failed")
        s.echo(name="on-success", arguments={"message": "x"}, depends="a.Succeeded")
        s.echo(name="either", arguments={"message": "x"}, depends="a.Succeeded || on-fail.Succeeded")
        s.echo(name="negated", arguments={"message": "x"}, depends="!(a.Succeeded) && (on-fail || a)")
        _ = a
    r = run(warm_executor, wf)
    assert phases(r) == {
        "a": "Failed",
        "on-fail": "Succeeded",
        "on-success": "Omitted",
        "either": "Succeeded",
        "negated": "Succeeded",
    }
    # Argo's assessment: the omitted leaf inherits a's Failed branch, so the workflow fails with a's message
    assert (r.phase, r.message) == ("Failed", "releasectl-check-failed: no")
    assert r.nodes["on-success"].message == "omitted: depends condition not met"


def test_a_handled_failure_leaves_the_workflow_succeeded(warm_executor: LocalExecutor) -> None:
    with Workflow(name="handled-failure", entrypoint="main") as wf, DAG(name="main"):
        a = s.check_fail(name="a", arguments={"reason": "no"})
        s.echo(name="cleanup", arguments={"message": "x"}, depends="a.Failed")
        _ = a
    r = run(warm_executor, wf)
    assert phases(r) == {"a": "Failed", "cleanup": "Succeeded"}
    assert r.phase == "Succeeded"


def test_when_true_runs_false_skips_and_skipped_counts_for_bare_depends(warm_executor: LocalExecutor) -> None:
    with Workflow(name="when-flow", entrypoint="main") as wf, DAG(name="main"):
        a = s.add(name="a", arguments={"a": "3"})
        total = a.get_parameter("sum")
        yes = s.echo(name="yes", arguments={"message": "ran"}, when=f"{total} == 5 && {total} >= 4.5")
        no = s.echo(name="no", arguments={"message": "x"}, when=f"{total} != 5 || abc == 'def'")
        word = s.echo(name="word", arguments={"message": "x"}, when="Succeeded == Succeeded")
        after = s.echo(name="after-skip", arguments={"message": "x"})
        a >> [yes, no, word]
        no >> after
    r = run(warm_executor, wf)
    assert phases(r) == {
        "a": "Succeeded",
        "yes": "Succeeded",
        "no": "Skipped",
        "word": "Succeeded",
        "after-skip": "Succeeded",
    }
    assert r.nodes["no"].message == "when '5 != 5 || abc == 'def'' evaluated false"
    assert r.phase == "Succeeded"


def test_unresolvable_reference_errors_before_the_step_runs(warm_executor: LocalExecutor) -> None:
    with Workflow(name="unresolvable", entrypoint="main") as wf, DAG(name="main"):
        a = s.echo(name="a", arguments={"message": "x"}, when="1 == 2")
        b = s.echo(name="b", arguments={"message": a.result})
        a >> b
    r = run(warm_executor, wf)
    assert phases(r) == {"a": "Skipped", "b": "Error"}
    assert r.nodes["b"].message == (
        "unable to resolve {{tasks.a.outputs.result}} in task 'b': task 'a' was Skipped and has no such output"
    )
    assert (r.phase, r.message) == ("Error", r.nodes["b"].message)
    assert not (warm_executor.home / "runs" / "unresolvable" / "steps" / "b-1").exists()


def test_bad_when_expression_is_an_error(warm_executor: LocalExecutor) -> None:
    with Workflow(name="bad-when", entrypoint="main") as wf, DAG(name="main"):
        s.echo(name="a", arguments={"message": "x"}, when="rc-dev == rc-dev")
    r = run(warm_executor, wf)
    assert r.nodes["a"].phase == "Error"
    assert r.nodes["a"].message.startswith("invalid 'when' expression 'rc-dev == rc-dev': unexpected '-'")


def test_retry_limit_reruns_a_step_that_fails_first(warm_executor: LocalExecutor, tmp_path: Path) -> None:
    counter = tmp_path / "flaky-count"
    with Workflow(name="retry-flaky", entrypoint="main") as wf, DAG(name="main"):
        s.flaky(name="flaky", arguments={"counter": str(counter)})
    r = run(warm_executor, wf)
    node = r.nodes["flaky"]
    assert (r.phase, node.phase, node.attempts, node.outputs) == ("Succeeded", "Succeeded", 2, {"attempt": "2"})
    steps = warm_executor.home / "runs" / "retry-flaky" / "steps"
    assert sorted(p.name for p in steps.iterdir()) == ["flaky-1", "flaky-2"]
    assert "first attempt fails" in (steps / "flaky-1" / "stderr").read_text()


def test_retry_policy_and_expression_decide_what_is_retried(warm_executor: LocalExecutor) -> None:
    with Workflow(name="retry-policies", entrypoint="main") as wf, DAG(name="main"):
        s.boom_on_error(name="failed-not-retried")
        s.check_not_retried(name="check-not-retried", arguments={"reason": "said no"})
    r = run(warm_executor, wf)
    assert r.nodes["failed-not-retried"].attempts == 1  # OnError does not retry a Failed step
    assert r.nodes["check-not-retried"].attempts == 1  # the expression refuses exit code 2
    assert r.nodes["check-not-retried"].message == "releasectl-check-failed: said no"


def test_template_deadline_kills_the_step_process_group(warm_executor: LocalExecutor) -> None:
    with Workflow(name="deadline-step", entrypoint="main") as wf, DAG(name="main"):
        slow = s.sleepy(name="slow", arguments={"seconds": "60"})
        after = s.echo(name="after", arguments={"message": "x"})
        slow >> after
    r = run(warm_executor, wf)
    node = r.nodes["slow"]
    assert (node.phase, node.exit_code) == ("Failed", 143)
    assert node.message == "step exceeded activeDeadlineSeconds (1s) and was killed"
    assert (r.phase, r.message, r.nodes["after"].phase) == ("Failed", node.message, "Omitted")


def test_workflow_deadline_fails_the_run(cold_executor: LocalExecutor) -> None:
    sleeper = Container(name="sleeper", command=["python", "-c", "import time; time.sleep(60)"])
    with Workflow(name="deadline-workflow", entrypoint="main", active_deadline_seconds=1) as wf, DAG(name="main"):
        a = sleeper(name="a")
        b = sleeper(name="b")
        a >> b
    r = run(cold_executor, wf)
    assert (r.phase, r.message) == ("Failed", "workflow exceeded activeDeadlineSeconds (1s)")
    assert (r.nodes["a"].phase, r.nodes["a"].message) == ("Failed", r.message)
    assert (r.nodes["b"].phase, r.nodes["b"].message) == ("Omitted", f"not run: {r.message}")


def test_inputs_parameters_is_the_json_list_argo_substitutes(cold_executor: LocalExecutor) -> None:
    show = Container(
        name="show",
        command=["python", "-c", "import sys; print(sys.argv[1])"],
        args=["{{inputs.parameters}}"],
        inputs=[Parameter(name="a"), Parameter(name="b", default="2"), Parameter(name="c", value="<&>")],
    )
    with Workflow(name="inputs-json", entrypoint="main") as wf, DAG(name="main"):
        first = show(name="first", arguments={"a": "x y"})
        second = Container(
            name="relay",
            command=["python", "-c", "import sys; print(sys.argv[1])"],
            args=["{{inputs.parameters.text}}"],
            inputs=[Parameter(name="text")],
        )(name="second", arguments={"text": first.result})
        first >> second
    r = run(cold_executor, wf)
    assert r.phase == "Succeeded"
    stdout = (cold_executor.home / "runs" / "inputs-json" / "steps" / "second-1" / "stdout").read_text()
    expected = [
        '{"name":"a","value":"x y"}',
        '{"name":"b","default":"2","value":"2"}',
        '{"name":"c","value":"\\u003c\\u0026\\u003e"}',  # Go's encoding/json escapes <, & and >
    ]
    assert stdout == "[" + ",".join(expected) + "]\n"
    assert json.loads(stdout)[2]["value"] == "<&>"


def test_independent_tasks_run_in_parallel_within_max_parallel(tmp_path: Path) -> None:
    sleeper = Container(name="nap", command=["python", "-c", "import time; time.sleep(0.5)"])
    events: list[str] = []
    with Workflow(name="parallel", entrypoint="main") as wf, DAG(name="main"):
        for n in ("p1", "p2", "p3"):
            sleeper(name=n)
    with LocalExecutor(tmp_path / "h2", max_parallel=2, warm=False, on_event=events.append) as ex:
        r = run(ex, wf)
    assert r.phase == "Succeeded"
    starts = [i for i, e in enumerate(events) if e.endswith("started (attempt 1)")]
    first_finish = next(i for i, e in enumerate(events) if re.fullmatch(r"parallel/p\d: Succeeded in \d+\.\d\ds", e))
    assert len([i for i in starts if i < first_finish]) == 2  # two at once, never three
    assert events[-1].startswith("parallel: Succeeded in ")
    with LocalExecutor(tmp_path / "h1", max_parallel=1, warm=False) as ex:
        wf.name = "serial"
        r = run(ex, wf)
    spans = sorted((n.started, n.finished) for n in r.nodes.values())
    assert all(a[1] is not None and b[0] is not None and a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_warm_and_cold_give_the_same_results(warm_executor: LocalExecutor, tmp_path: Path) -> None:
    def build(name: str) -> Workflow:
        with Workflow(name=name, entrypoint="main") as wf, DAG(name="main"):
            a = s.add(name="a", arguments={"a": "1", "b": "2"})
            b = s.shout(name="b", arguments={"message": a.get_parameter("sum")})
            c = s.check_fail(name="c", arguments={"reason": "nope"})
            w = s.whoami(name="who")
            a >> b
            _ = (c, w)
        return wf

    warm = run(warm_executor, build("same-warm"))
    with LocalExecutor(tmp_path / "cold", warm=False) as cold_ex:
        cold = run(cold_ex, build("same-cold"))
    for r in (warm, cold):
        assert r.phase == "Failed" and r.message == "releasectl-check-failed: nope"
    for task in ("a", "b", "c"):
        w, c = warm.nodes[task], cold.nodes[task]
        assert (w.phase, w.message, w.exit_code, w.outputs) == (c.phase, c.message, c.exit_code, c.outputs)
    for r, home, parent in (
        (warm, warm_executor.home, warm_executor.warm_pid),
        (cold, tmp_path / "cold", os.getpid()),
    ):
        me = json.loads((home / "runs" / r.name / "steps" / "who-1" / "stdout").read_text())
        stepdir = home / "runs" / r.name / "steps" / "who-1"
        assert me["ppid"] == parent  # forked by the warm worker, or a plain child of this process
        assert me["pgid_is_pid"] is True  # its own process group
        assert (me["cwd"], me["outputs"], me["stdin"]) == (str(stepdir / "work"), str(stepdir / "outputs"), "")
        assert me["argv0"].endswith("hera/workflows/runner.py")
        assert json.loads((stepdir / "step.json").read_text())["warm"] is (r is warm)


def test_a_dying_warm_worker_is_an_error_then_restarted(warm_executor: LocalExecutor, tmp_path: Path) -> None:
    before = warm_executor.warm_pid
    with Workflow(name="worker-dies", entrypoint="main") as wf, DAG(name="main"):
        s.kill_worker_once(name="k", arguments={"counter": str(tmp_path / "kills")})
    r = run(warm_executor, wf)
    node = r.nodes["k"]
    assert (r.phase, node.attempts, node.outputs) == ("Succeeded", 2, {"attempt": "2"})
    first = json.loads((warm_executor.home / "runs" / "worker-dies" / "steps" / "k-1" / "step.json").read_text())
    assert (first["phase"], first["message"]) == (
        "Error",
        "the warm worker died while the step ran; the step was killed",
    )
    assert warm_executor.warm_pid not in (None, before)


def test_an_inline_hera_script_runs_as_a_plain_python_file(cold_executor: LocalExecutor) -> None:
    with Workflow(name="inline-script", entrypoint="main") as wf, DAG(name="main"):
        s.inline_add(name="x", arguments={"a": "2", "b": "40"})
    m = compiled(wf)
    assert "{{inputs.parameters.a}}" in template_source(m, "inline-add")
    r = cold_executor.wait(cold_executor.submit(m), 60)
    assert r.phase == "Succeeded", r
    stepdir = cold_executor.home / "runs" / "inline-script" / "steps" / "x-1"
    assert "{{" not in (stepdir / "script").read_text()  # substituted before it was written
    assert (stepdir / "stdout").read_text() == "42\n"
    assert json.loads((stepdir / "step.json").read_text())["argv"] == [sys.executable, str(stepdir / "script")]


def template_source(m: dict[str, Any], name: str) -> str:
    return str(next(t for t in m["spec"]["templates"] if t["name"] == name)["script"]["source"])
