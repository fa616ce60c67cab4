"""The long-running controller: webhooks, /healthz, /readyz, /metrics, JSON logs, a loop that never dies.

Real git, the real LocalExecutor (fast steps), real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.loop.logs import Logger
from controller.loop.metrics import Metrics
from controller.loop.server import MAX_BODY, Endpoints, Server, verify
from controller.loop.service import Controller
from tests.fastexec import FastExecutor
from tests.support import Clone, git, make_release_repo
from tests.test_async import bump, controller, single_env, until

SECRET = b"It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


class Headers(dict[str, str]):
    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return next((v for k, v in self.items() if k.lower() == key.lower()), default)


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("kind", "headers", "body", "why"),
    [
        pytest.param("github", {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY, None, id="github-test-vector"),
        pytest.param("github", {}, GITHUB_BODY, "missing X-Hub-Signature-256", id="github-unsigned"),
        pytest.param(
            "github",
            {"X-Hub-Signature-256": GITHUB_SIGNATURE},
            b"Hello, World?",
            "X-Hub-Signature-256 does not match",
            id="github-body-altered",
        ),
        pytest.param(
            "github",
            {"X-Hub-Signature-256": sign(GITHUB_BODY, b"another secret")},
            GITHUB_BODY,
            "X-Hub-Signature-256 does not match",
            id="github-wrong-secret",
        ),
        pytest.param("gitlab", {"X-Gitlab-Token": SECRET.decode()}, b"{}", None, id="gitlab-token"),
        pytest.param("gitlab", {"X-Gitlab-Token": "guess"}, b"{}", "X-Gitlab-Token does not match", id="gitlab-wrong"),
        pytest.param("gitlab", {}, b"{}", "missing X-Gitlab-Token", id="gitlab-missing"),
        pytest.param("generic", {"X-Releasectl-Signature": sign(b"{}")}, b"{}", None, id="generic-signed"),
        pytest.param(
            "generic",
            {"X-Releasectl-Signature": sign(b"{}")[:-1] + "0"},
            b"{}",
            "X-Releasectl-Signature does not match",
            id="generic-wrong",
        ),
    ],
)
def test_webhook_signatures(kind: str, headers: dict[str, str], body: bytes, why: str | None) -> None:
    assert verify(kind, SECRET, Headers(headers), body) == why


@pytest.fixture
def endpoint() -> Iterator[tuple[Server, list[str], list[str], Metrics, list[tuple[bool, str]]]]:
    fired: list[str] = []
    lines: list[str] = []
    ready = [(False, "no pass has completed yet")]
    metrics = Metrics()
    server = Server(
        "127.0.0.1",
        0,
        Endpoints(
            secret=SECRET,
            trigger=fired.append,
            ready=lambda: ready[0],
            metrics=metrics,
            log=lambda line, **_fields: lines.append(line),
        ),
    ).start()
    yield server, fired, lines, metrics, ready
    server.close()


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return response.status, text


def test_the_endpoints_answer_as_documented(
    endpoint: tuple[Server, list[str], list[str], Metrics, list[tuple[bool, str]]],
) -> None:
    server, fired, lines, _metrics, ready = endpoint
    port = server.port
    assert request(port, "POST", "/webhooks/github", GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIGNATURE}) == (
        202,
        "accepted: a pass will fetch\n",
    )
    assert fired == ["webhook github"]
    for headers, body in [
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, GITHUB_BODY),
        ({}, GITHUB_BODY),
        ({"X-Hub-Signature-256": GITHUB_SIGNATURE}, b"Hello, World!!"),
    ]:
        assert request(port, "POST", "/webhooks/github", body, headers) == (401, "unauthorized\n")
    assert request(port, "POST", "/webhooks/gitlab", b"{}", {"X-Gitlab-Token": "nope"})[0] == 401
    assert request(port, "POST", "/webhooks/generic", b"{}", {"X-Releasectl-Signature": sign(b"{}")})[0] == 202
    assert fired == ["webhook github", "webhook generic"]
    # an oversized body is refused from its Content-Length, before it is read
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/webhooks/github")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.putheader("X-Hub-Signature-256", GITHUB_SIGNATURE)
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert request(port, "POST", "/webhooks/bitbucket", b"{}")[0] == 404
    # the log says who was refused and why, never the payload
    unauthorized = [line for line in lines if "unauthorized" in line]
    assert len(unauthorized) == 4 and not any("Hello" in line for line in lines)

    assert request(port, "GET", "/healthz") == (200, "ok\n")
    assert request(port, "GET", "/readyz") == (503, "no pass has completed yet\n")
    ready[0] = (True, "ok")
    assert request(port, "GET", "/readyz") == (200, "ok\n")

    status, text = request(port, "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for s in families["releasectl_webhook_requests"].samples
    }
    assert samples[("releasectl_webhook_requests_total", (("result", "accepted"),))] == 2
    assert samples[("releasectl_webhook_requests_total", (("result", "unauthorized"),))] == 4
    assert samples[("releasectl_webhook_requests_total", (("result", "too_large"),))] == 1


def run_in_thread(ctl: Controller) -> threading.Thread:
    thread = threading.Thread(target=ctl.run, daemon=True)
    thread.start()
    return thread


def test_a_burst_of_webhooks_coalesces_and_metrics_have_every_series(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    rec = controller(repo, fast)
    ctl = Controller(rec, interval_s=600, commit_time=rec.repo.commit_time)
    server = Server(
        "127.0.0.1",
        0,
        Endpoints(
            secret=SECRET,
            trigger=ctl.triggers.fire,
            ready=lambda: ctl.health.ready(600),
            metrics=ctl.metrics,
            log=rec.log,
        ),
    ).start()
    thread = run_in_thread(ctl)
    try:
        until(lambda: len(git(repo.remote, "log", "--format=%s", "main").splitlines()) == 4, "adoption")
        until(lambda: not rec.in_flight and ctl.health.last_ok is not None, "an idle controller")
        user = repo.clone("user")
        user.merge_pr("b", bump("wine-classifier", "2.2.0"), "Bump wine")
        before = ctl.passes
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        with ThreadPoolExecutor(20) as pool:
            codes = list(
                pool.map(
                    lambda _: request(
                        server.port, "POST", "/webhooks/generic", body, {"X-Releasectl-Signature": sign(body)}
                    )[0],
                    range(20),
                )
            )
        assert codes == [202] * 20
        until(lambda: bool(rec.in_flight) or ctl.passes > before, "a pass")
        webhook_passes = ctl.passes - before
        assert 1 <= webhook_passes <= 2
        until(
            lambda: "wine-classifier 2.2.0 Deployed" in git(repo.remote, "log", "-1", "--format=%s", "main"), "deploy"
        )
        until(lambda: ctl.metrics.outcomes.labels("Deployed", "dev")._value.get() == 4, "the metrics of that pass")  # type: ignore[attr-defined]
        status, text = request(server.port, "GET", "/metrics")
        assert status == 200
        names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
        for series in (
            "releasectl_passes_total",
            "releasectl_pass_duration_seconds_bucket",
            "releasectl_runs_in_flight",
            "releasectl_outcomes_total",
            "releasectl_push_retries_total",
            "releasectl_last_successful_pass_timestamp_seconds",
            "releasectl_webhook_requests_total",
            "releasectl_merge_to_submission_seconds_bucket",
        ):
            assert series in names, series
        outcomes = {
            tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "releasectl_outcomes_total"
        }
        assert outcomes[(("environment", "dev"), ("phase", "Deployed"))] == 4
        merged = next(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "releasectl_merge_to_submission_seconds_count"
        )
        assert merged == 4
    finally:
        ctl.stop()
        thread.join(10)
        server.close()
    assert not thread.is_alive()


def test_an_invalid_policy_stalls_the_loop_which_keeps_watching_and_resumes(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    rec = controller(repo, fast)
    ctl = Controller(rec, interval_s=0.2)
    thread = run_in_thread(ctl)
    try:
        # adoption recorded (three status commits), not only a moment between two of its passes
        until(lambda: len(git(repo.remote, "log", "--format=%H", "main", "--", "status").split()) == 3, "adoption")
        until(lambda: ctl.health.ready(0.2)[0] and not rec.in_flight, "an idle controller")
        user = repo.clone("user")

        def break_policy(c: Clone) -> None:
            c.write("environments/policy.yaml", "apiVersion: releasectl/v1\nkind: PromotionPolicy\n")
            bump("wine-classifier", "2.2.0")(c)

        user.merge_pr("broken", break_policy, "Break the policy and bump wine")
        head = git(repo.remote, "rev-parse", "main")
        until(lambda: not ctl.health.ready(0.2)[0], "stalled")
        ready, why = ctl.health.ready(0.2)
        assert not ready
        assert why.startswith("stalled: environments/policy.yaml: order: is required [required]")
        passes = ctl.passes
        until(lambda: ctl.passes >= passes + 2, "the loop keeps watching")
        assert thread.is_alive() and git(repo.remote, "rev-parse", "main") == head  # nothing acted
        assert ctl.metrics.stalled._value.get() == 1  # type: ignore[attr-defined]

        user.merge_pr(
            "fix",
            lambda c: c.write(
                "environments/policy.yaml",
                "apiVersion: releasectl/v1\nkind: PromotionPolicy\norder: [dev]\nenvironments:\n  dev: {}\n",
            ),
            "Fix the policy",
        )
        until(
            lambda: "wine-classifier 2.2.0 Deployed" in git(repo.remote, "log", "-1", "--format=%s", "main"), "resume"
        )
        until(lambda: ctl.health.ready(0.2)[0], "ready again")
    finally:
        ctl.stop()
        thread.join(10)


def test_json_logs_carry_the_fields(tmp_path: Path) -> None:
    out = io.StringIO()
    log = Logger("json", out)
    log("dev/wine 2.2.0: Deployed", environment="dev", model="wine", version="2.2.0", commit="a" * 40, workflow="rc-x")
    log("error: something broke")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "msg", "environment", "model", "version", "commit", "workflow")} == {
        "level": "info",
        "msg": "dev/wine 2.2.0: Deployed",
        "environment": "dev",
        "model": "wine",
        "version": "2.2.0",
        "commit": "a" * 40,
        "workflow": "rc-x",
    }
    assert first["time"].endswith("Z") and second["level"] == "error"
    text = io.StringIO()
    Logger("text", text)("plain", model="wine")
    assert text.getvalue() == "plain\n"
